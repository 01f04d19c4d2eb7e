#pragma once
// The sources of one library: kind, name, pages or files, tokens, status (with the error or the
// skipped files in the tooltip).

#include <QAbstractTableModel>

#include "library/library_db.h"

namespace quire::ui {

class SourceTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { KindColumn, NameColumn, UnitsColumn, TokensColumn, StatusColumn, ColumnCount };
    enum Role { IdRole = Qt::UserRole + 1, PathRole };
    explicit SourceTableModel(app::LibraryDb& db, QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

    void setLibrary(qint64 libraryId);
    void refresh();
    qint64 libraryId() const { return libraryId_; }
    const app::SourceRow& sourceAt(int row) const { return rows_[row]; }

private:
    app::LibraryDb& db_;
    qint64 libraryId_ = 0;
    QList<app::SourceRow> rows_;
};

}  // namespace quire::ui
