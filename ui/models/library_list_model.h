#pragma once
// The libraries in the database, by name, with their source counts.

#include <QAbstractListModel>

#include "library/library_db.h"

namespace quire::ui {

class LibraryListModel : public QAbstractListModel {
    Q_OBJECT
public:
    enum Role { IdRole = Qt::UserRole + 1, NameRole, SourceCountRole };
    explicit LibraryListModel(app::LibraryDb& db, QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

    void refresh();
    qint64 idAt(int row) const;
    int rowOf(qint64 id) const;
    QString nameOf(qint64 id) const;

private:
    struct Row {
        app::LibraryRow library;
        qsizetype sources = 0;
    };
    app::LibraryDb& db_;
    QList<Row> rows_;
};

}  // namespace quire::ui
