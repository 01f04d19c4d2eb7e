#include "library_removal.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSet>

#include <functional>

#include "state_files.h"

namespace quire::app {

namespace {
// State paths are stored relative to the data folder (the database's folder); older rows may be absolute.
void removeFiles(const LibraryDb& db, const QStringList& stored, Removal& out) {
    const QDir root = QFileInfo(db.path()).absoluteDir();
    QSet<QString> seen;  // a recorded path and the same file found by its name
    for (const QString& s : stored) {
        if (s.isEmpty()) continue;
        const QString p = QDir::cleanPath(root.filePath(s));
        if (seen.contains(p) || !QFile::exists(p)) continue;
        seen.insert(p);
        QFile f(p);
        if (f.remove()) out.removedFiles << p;
        else out.leftFiles << p + ": " + f.errorString();
    }
}

// On a full disk SQLite cannot delete rows until some space is free, and deleting is how a user frees
// it: the state files the delete would remove anyway go first (a state file that is missing is only
// "not read yet" to the library, never a wrong answer), then the library is opened for writing again.
Status freeSpaceFirst(LibraryDb& db, const QStringList& files, Removal& out) {
    if (!db.diskFull()) return Status::ok();
    removeFiles(db, files, out);
    if (db.reopenForWriting(0)) return Status::ok();
    const QString freed = out.removedFiles.isEmpty() ? QString("there were no saved states to remove")
                                                     : QString("removing %1 saved state file(s) did not free enough").arg(out.removedFiles.size());
    return Status(ErrorCode::io_error,
                  QString("%1 is %2: Quire can read this library but not change it (%3)").arg(db.path(), db.readOnlyReason(), freed).toStdString());
}

// A library opened writable (another process holds its journal files open) meets the full disk only
// when it writes: then the state files go, and the delete is tried once more.
Status deleteFreeingSpace(LibraryDb& db, const QStringList& files, Removal& out, const std::function<Status()>& remove) {
    Status st = remove();
    if (!isDiskFull(st)) return st;
    const qsizetype before = out.removedFiles.size();
    removeFiles(db, files, out);
    return out.removedFiles.size() > before ? remove() : st;
}
}  // namespace

// The files a killed save may have put in place before the database recorded them (a kill between
// the rename and the row): by their names in DATA/states (state_files.h).
QStringList unrecordedFiles(const LibraryDb& db, const QStringList& patterns) {
    const QDir states(QFileInfo(db.path()).absoluteDir().filePath("states"));
    QStringList out;
    for (const QString& name : states.entryList(patterns, QDir::Files)) out << states.filePath(name);
    return out;
}

Result<Removal> deleteLibraryWithStates(LibraryDb& db, qint64 libraryId) {
    QStringList files;
    auto states = db.prefixStates(libraryId);
    if (!states) return states.status();
    for (const PrefixStateRow& r : states.value()) files << r.path;
    auto chats = db.chats(libraryId);
    if (!chats) return chats.status();
    QStringList names{libraryStateFiles(libraryId)};
    for (const ChatRow& c : chats.value()) files << c.statePath, names << chatStateFile(c.id);
    files << unrecordedFiles(db, names);
    Removal out;
    QUIRE_TRY(freeSpaceFirst(db, files, out));
    QUIRE_TRY(deleteFreeingSpace(db, files, out, [&] { return db.deleteLibrary(libraryId); }));
    removeFiles(db, files, out);
    return out;
}

Result<Removal> deleteChatWithState(LibraryDb& db, qint64 chatId) {
    auto chat = db.chat(chatId);
    if (!chat) return chat.status();
    if (!chat.value()) return Status(ErrorCode::invalid_argument, "no chat " + std::to_string(chatId));
    const QStringList files = QStringList{chat.value()->statePath} << unrecordedFiles(db, {chatStateFile(chatId)});
    Removal out;
    QUIRE_TRY(freeSpaceFirst(db, files, out));
    QUIRE_TRY(deleteFreeingSpace(db, files, out, [&] { return db.deleteChat(chatId); }));
    removeFiles(db, files, out);
    return out;
}

}  // namespace quire::app
