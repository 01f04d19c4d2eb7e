#include "source_table_model.h"

#include <QDir>
#include <QFileInfo>
#include <QLocale>

namespace quire::ui {

SourceTableModel::SourceTableModel(app::LibraryDb& db, QObject* parent) : QAbstractTableModel(parent), db_(db) {}

int SourceTableModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }
int SourceTableModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant SourceTableModel::data(const QModelIndex& index, int role) const {
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) return {};
    const app::SourceRow& s = rows_[index.row()];
    if (role == IdRole) return s.id;
    if (role == PathRole) return s.path;
    if (role == Qt::ToolTipRole) {
        QString tip = s.path;
        if (!s.error.isEmpty()) tip += "\n" + s.error;
        if (!s.skipped.isEmpty()) tip += "\n" + tr("Skipped:") + "\n" + s.skipped.trimmed();
        return tip;
    }
    if (role == Qt::TextAlignmentRole && (index.column() == UnitsColumn || index.column() == TokensColumn))
        return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
    if (role != Qt::DisplayRole) return {};
    switch (index.column()) {
    case KindColumn: return s.kind == "pdf" ? tr("PDF") : s.kind == "code" ? tr("Code") : tr("Text");
    case NameColumn:  // a folder shows where it is: many projects have a src/ or a docs/
        return s.kind == "code" ? QString("%1 — %2").arg(QFileInfo(s.path).fileName(), QDir::toNativeSeparators(s.path))
                                : QFileInfo(s.path).fileName();
    case UnitsColumn:
        if (s.kind == "pdf") return s.units == 1 ? tr("1 page") : tr("%1 pages").arg(s.units);
        return s.units == 1 ? tr("1 file") : tr("%1 files").arg(s.units);
    case TokensColumn: return s.tokenCount ? QLocale().toString(s.tokenCount) : QString("—");
    case StatusColumn:
        if (s.status == "ready") return s.skipped.isEmpty() ? tr("Ready") : tr("Ready, %1 skipped").arg(s.skipped.count('\n'));
        if (s.status == "needs password") return s.error.contains("does not open") ? tr("Wrong password") : tr("Needs password");
        // The whole reason is in the tooltip; the cell keeps the start of it readable.
        return tr("Error: %1").arg(s.error.size() > 60 ? s.error.left(57) + "…" : s.error);
    default: return {};
    }
}

QVariant SourceTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
    switch (section) {
    case KindColumn: return tr("Kind");
    case NameColumn: return tr("Source");
    case UnitsColumn: return tr("Pages / files");
    case TokensColumn: return tr("Tokens");
    case StatusColumn: return tr("Status");
    default: return {};
    }
}

void SourceTableModel::setLibrary(qint64 libraryId) {
    libraryId_ = libraryId;
    refresh();
}

void SourceTableModel::refresh() {
    beginResetModel();
    rows_.clear();
    if (libraryId_)
        if (auto s = db_.sources(libraryId_)) rows_ = s.value();
    endResetModel();
}

}  // namespace quire::ui
