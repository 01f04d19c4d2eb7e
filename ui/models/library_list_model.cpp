#include "library_list_model.h"

namespace quire::ui {

LibraryListModel::LibraryListModel(app::LibraryDb& db, QObject* parent) : QAbstractListModel(parent), db_(db) { refresh(); }

int LibraryListModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }

QVariant LibraryListModel::data(const QModelIndex& index, int role) const {
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) return {};
    const Row& r = rows_[index.row()];
    switch (role) {
    case Qt::DisplayRole: return r.library.name;
    case Qt::ToolTipRole: return tr("%1 — %n source(s)", "", static_cast<int>(r.sources)).arg(r.library.name);
    case IdRole: return r.library.id;
    case NameRole: return r.library.name;
    case SourceCountRole: return static_cast<qlonglong>(r.sources);
    default: return {};
    }
}

QHash<int, QByteArray> LibraryListModel::roleNames() const {
    auto names = QAbstractListModel::roleNames();
    names[IdRole] = "libraryId";
    names[NameRole] = "name";
    names[SourceCountRole] = "sourceCount";
    return names;
}

void LibraryListModel::refresh() {
    beginResetModel();
    rows_.clear();
    if (auto libs = db_.libraries())
        for (const auto& l : libs.value()) {
            auto sources = db_.sources(l.id);
            rows_.append({l, sources ? sources->size() : 0});
        }
    endResetModel();
}

qint64 LibraryListModel::idAt(int row) const { return row >= 0 && row < rows_.size() ? rows_[row].library.id : 0; }

int LibraryListModel::rowOf(qint64 id) const {
    for (int i = 0; i < rows_.size(); ++i)
        if (rows_[i].library.id == id) return i;
    return -1;
}

}  // namespace quire::ui

namespace quire::ui {
QString LibraryListModel::nameOf(qint64 id) const {
    const int row = rowOf(id);
    return row < 0 ? QString() : data(index(row), Qt::DisplayRole).toString();
}
}  // namespace quire::ui
