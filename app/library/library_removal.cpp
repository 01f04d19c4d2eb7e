#include "library_removal.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSet>

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
    QUIRE_TRY(db.deleteLibrary(libraryId));
    Removal out;
    removeFiles(db, files, out);
    return out;
}

Result<Removal> deleteChatWithState(LibraryDb& db, qint64 chatId) {
    auto chat = db.chat(chatId);
    if (!chat) return chat.status();
    if (!chat.value()) return Status(ErrorCode::invalid_argument, "no chat " + std::to_string(chatId));
    QUIRE_TRY(db.deleteChat(chatId));
    Removal out;
    removeFiles(db, QStringList{chat.value()->statePath} << unrecordedFiles(db, {chatStateFile(chatId)}), out);
    return out;
}

}  // namespace quire::app
