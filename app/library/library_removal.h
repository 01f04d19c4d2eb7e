#pragma once
// Deleting a library or a chat with everything it owns: the rows (sources, texts, chats, messages
// and state records go with them) and the state files on disk, which the database only points to.
// The rows go first, in the database's own transaction; a state file that then cannot be removed
// is only wasted space, reported, never a dangling record. On a full disk, where the database cannot
// change until space is freed, the state files go first and the database is opened for writing again.

#include <QStringList>

#include "library_db.h"
#include "status.h"

namespace quire::app {

struct Removal {
    QStringList removedFiles;
    QStringList leftFiles;  // could not be removed: "path: reason"
};

Result<Removal> deleteLibraryWithStates(LibraryDb& db, qint64 libraryId);
Result<Removal> deleteChatWithState(LibraryDb& db, qint64 chatId);

}  // namespace quire::app
