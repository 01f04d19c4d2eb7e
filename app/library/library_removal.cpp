#include "library_removal.h"

#include <QFile>

namespace quire::app {

namespace {
void removeFiles(const QStringList& paths, Removal& out) {
    for (const QString& p : paths) {
        if (p.isEmpty() || !QFile::exists(p)) continue;
        QFile f(p);
        if (f.remove()) out.removedFiles << p;
        else out.leftFiles << p + ": " + f.errorString();
    }
}
}  // namespace

Result<Removal> deleteLibraryWithStates(LibraryDb& db, qint64 libraryId) {
    QStringList files;
    auto states = db.prefixStates(libraryId);
    if (!states) return states.status();
    for (const PrefixStateRow& r : states.value()) files << r.path;
    auto chats = db.chats(libraryId);
    if (!chats) return chats.status();
    for (const ChatRow& c : chats.value()) files << c.statePath;
    QUIRE_TRY(db.deleteLibrary(libraryId));
    Removal out;
    removeFiles(files, out);
    return out;
}

Result<Removal> deleteChatWithState(LibraryDb& db, qint64 chatId) {
    auto chat = db.chat(chatId);
    if (!chat) return chat.status();
    if (!chat.value()) return Status(ErrorCode::invalid_argument, "no chat " + std::to_string(chatId));
    QUIRE_TRY(db.deleteChat(chatId));
    Removal out;
    removeFiles({chat.value()->statePath}, out);
    return out;
}

}  // namespace quire::app
