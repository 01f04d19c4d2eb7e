#pragma once
// Guards a long-lived SQLite connection against its WAL journal being deleted or replaced under it
// (a user cleaning up "library.sqlite-wal" while `quire ask` runs). Such a connection keeps writing
// to the old, unlinked journal, and when it closes it checkpoints that journal's stale pages over
// whatever other processes saved in the meantime. LibraryDb records which -wal and -shm files a
// connection opened, compares before every write and before closing, and replaces a stale
// connection without letting it checkpoint.

#include <QSqlDatabase>
#include <QString>

#include <cstdint>

namespace quire::app {

struct JournalFiles {
    bool present = false;  // both -wal and -shm exist
    uint64_t walDevice = 0, walInode = 0, shmDevice = 0, shmInode = 0;
    bool operator==(const JournalFiles&) const = default;
};

// The identity of databasePath's -wal and -shm files right now.
JournalFiles journalFiles(const QString& databasePath);

// Tells SQLite not to checkpoint (nor delete the journal) when this connection closes.
bool disableCheckpointOnClose(const QSqlDatabase& connection);

}  // namespace quire::app
