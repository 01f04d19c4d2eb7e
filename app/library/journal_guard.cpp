#include "journal_guard.h"

#include <QFile>
#include <QSqlDriver>
#include <QVariant>

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstring>

namespace quire::app {

JournalFiles journalFiles(const QString& databasePath) {
    JournalFiles f;
    struct stat wal {}, shm {};
    if (::stat(QFile::encodeName(databasePath + "-wal").constData(), &wal) != 0) return f;
    if (::stat(QFile::encodeName(databasePath + "-shm").constData(), &shm) != 0) return f;
    f.present = true;
    f.walDevice = wal.st_dev;
    f.walInode = wal.st_ino;
    f.shmDevice = shm.st_dev;
    f.shmInode = shm.st_ino;
    return f;
}

bool disableCheckpointOnClose(const QSqlDatabase& connection) {
    // Qt's SQLite driver hands out its sqlite3* as a QVariant of type "sqlite3*".
    const QVariant handle = connection.driver() ? connection.driver()->handle() : QVariant();
    if (!handle.isValid() || std::strcmp(handle.typeName(), "sqlite3*") != 0) return false;
    sqlite3* db = *static_cast<sqlite3* const*>(handle.data());
    return db && sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr) == SQLITE_OK;
}

}  // namespace quire::app
