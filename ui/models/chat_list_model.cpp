#include "chat_list_model.h"

#include <algorithm>

namespace quire::ui {

ChatListModel::ChatListModel(app::LibraryDb& db, QObject* parent) : QAbstractListModel(parent), db_(db) {}

int ChatListModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }

QVariant ChatListModel::data(const QModelIndex& index, int role) const {
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) return {};
    const app::ChatRow& c = rows_[index.row()];
    if (role == Qt::DisplayRole) return c.title.isEmpty() ? tr("Chat %1").arg(c.id) : c.title;
    if (role == Qt::ToolTipRole) return tr("Started %1").arg(c.created);
    if (role == IdRole) return c.id;
    return {};
}

void ChatListModel::setLibrary(qint64 libraryId) {
    libraryId_ = libraryId;
    refresh();
}

void ChatListModel::refresh() {
    beginResetModel();
    rows_.clear();
    if (libraryId_)
        if (auto c = db_.chats(libraryId_)) rows_ = c.value();
    std::reverse(rows_.begin(), rows_.end());
    endResetModel();
}

qint64 ChatListModel::idAt(int row) const { return row >= 0 && row < rows_.size() ? rows_[row].id : 0; }

int ChatListModel::rowOf(qint64 id) const {
    for (int i = 0; i < rows_.size(); ++i)
        if (rows_[i].id == id) return i;
    return -1;
}

}  // namespace quire::ui
