#pragma once
// The chats of one library, newest first.

#include <QAbstractListModel>

#include "library/library_db.h"

namespace quire::ui {

class ChatListModel : public QAbstractListModel {
    Q_OBJECT
public:
    enum Role { IdRole = Qt::UserRole + 1 };
    explicit ChatListModel(app::LibraryDb& db, QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;

    void setLibrary(qint64 libraryId);
    void refresh();
    qint64 idAt(int row) const;
    int rowOf(qint64 id) const;

private:
    app::LibraryDb& db_;
    qint64 libraryId_ = 0;
    QList<app::ChatRow> rows_;
};

}  // namespace quire::ui
