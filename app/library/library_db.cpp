#include "library_db.h"

#include <sys/statvfs.h>

#include "journal_guard.h"

#include <QDateTime>
#include <QFile>
#include <QFileInfo>
#include <QScopeGuard>
#include <QRegularExpression>
#include <QUrl>
#include <QSqlError>
#include <QSqlQuery>
#include <QThread>
#include <QUuid>
#include <QVariant>

namespace quire::app {

namespace {

// Schema migrations: entry i moves the database from version i to i + 1.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE libraries(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        system_prompt TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL);
    CREATE TABLE sources(
        id INTEGER PRIMARY KEY,
        library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        content_hash TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL DEFAULT 0,
        units INTEGER NOT NULL DEFAULT 0,
        token_count INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        skipped TEXT NOT NULL DEFAULT '',
        added TEXT NOT NULL,
        UNIQUE(library_id, path));
    CREATE TABLE source_texts(
        source_id INTEGER PRIMARY KEY REFERENCES sources(id) ON DELETE CASCADE,
        text TEXT NOT NULL);
    CREATE TABLE chats(
        id INTEGER PRIMARY KEY,
        library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        created TEXT NOT NULL,
        state_path TEXT NOT NULL DEFAULT '',
        state_tokens INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE messages(
        id INTEGER PRIMARY KEY,
        chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        tokens BLOB,
        created TEXT NOT NULL,
        first_token_seconds REAL NOT NULL DEFAULT 0,
        tokens_per_second REAL NOT NULL DEFAULT 0);
    CREATE TABLE prefix_states(
        id INTEGER PRIMARY KEY,
        library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        model_fingerprint TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        token_count INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        last_used TEXT NOT NULL);
    CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE INDEX sources_by_library ON sources(library_id, position);
    CREATE INDEX messages_by_chat ON messages(chat_id, id);
    )sql",
    // 2: one row per state file. Two processes reading one library at once saved the same file and
    // recorded it twice; evicting one row then deleted the file under the other.
    R"sql(
    DELETE FROM prefix_states WHERE id NOT IN (SELECT MAX(id) FROM prefix_states GROUP BY path);
    CREATE UNIQUE INDEX prefix_states_by_path ON prefix_states(path);
    )sql",
    // 3: an answer cut short by Stop keeps its "stopped" mark after a restart.
    R"sql(
    ALTER TABLE messages ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 4: library, chat and message numbers are never given twice. SQLite hands out MAX(id) + 1, so
    // deleting the newest chat gave its number to the next one, and an answer still being written
    // for the deleted chat landed in the new one; a regenerated answer took its old message numbers,
    // hiding it from a follow-up that checks the chat's last message. id_floor keeps the highest
    // number ever given (a trigger raises it on every insert); inserts take the number after it.
    R"sql(
    CREATE TABLE id_floor(kind TEXT PRIMARY KEY, last INTEGER NOT NULL);
    INSERT INTO id_floor SELECT 'libraries', COALESCE(MAX(id), 0) FROM libraries;
    INSERT INTO id_floor SELECT 'chats', COALESCE(MAX(id), 0) FROM chats;
    INSERT INTO id_floor SELECT 'messages', COALESCE(MAX(id), 0) FROM messages;
    CREATE TRIGGER libraries_id_floor AFTER INSERT ON libraries
        BEGIN UPDATE id_floor SET last = MAX(last, NEW.id) WHERE kind = 'libraries'; END;
    CREATE TRIGGER chats_id_floor AFTER INSERT ON chats
        BEGIN UPDATE id_floor SET last = MAX(last, NEW.id) WHERE kind = 'chats'; END;
    CREATE TRIGGER messages_id_floor AFTER INSERT ON messages
        BEGIN UPDATE id_floor SET last = MAX(last, NEW.id) WHERE kind = 'messages'; END;
    )sql",
    // 5: each source's token ids, kept for the tokenizer and text they came from, so that a question in
    // a new process does not tokenize the whole library again (seconds at 1M tokens).
    R"sql(
    CREATE TABLE IF NOT EXISTS source_tokens(
        source_id INTEGER PRIMARY KEY REFERENCES sources(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        ids BLOB NOT NULL);
    )sql",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == LibraryDb::kSchemaVersion);

// A new chat takes the number after the highest ever given (migration 4).
const char* const kInsertChat =
    "INSERT INTO chats(id, library_id, title, created) VALUES((SELECT last + 1 FROM id_floor WHERE kind = 'chats'), ?, ?, ?)";

// A null QString binds as SQL NULL; the schema's text columns are NOT NULL, so bind "" instead.
QVariant sqlText(const QString& s) { return QVariant(s.isNull() ? QString("") : s); }

Status dbError(const QString& what, const QSqlError& e) {
    // SQLITE_FULL: said in words.
    if (e.nativeErrorCode() == "13" || e.text().contains("database or disk is full", Qt::CaseInsensitive))
        return Status(ErrorCode::io_error,
                      (what + ": " + kDiskFullWords + " (free some space and try again)")
                          .toStdString());
    return Status(ErrorCode::io_error, (what + ": " + e.text()).toStdString());
}

// Runs a prepared statement, turning any failure into a Status that names the statement.
Status run(QSqlQuery& q, const char* what) {
    if (!q.exec()) return dbError(QString("library database (%1)").arg(what), q.lastError());
    return Status::ok();
}

// Write transactions take the write lock at BEGIN (IMMEDIATE), so that a second writer waits for the
// busy timeout instead of failing at once with "database is locked" when its read lock cannot be
// upgraded (SQLite never waits on that upgrade: it would deadlock).
Status beginWrite(QSqlDatabase& c, const char* what) {
    QSqlQuery q(c);
    if (!q.exec("BEGIN IMMEDIATE")) return dbError(QString("cannot start a transaction (%1)").arg(what), q.lastError());
    return Status::ok();
}
Status commitWrite(QSqlDatabase& c, const char* what) {
    QSqlQuery q(c);
    if (!q.exec("COMMIT")) {
        const QSqlError e = q.lastError();
        QSqlQuery(c).exec("ROLLBACK");
        return dbError(QString("cannot commit (%1)").arg(what), e);
    }
    return Status::ok();
}
void rollbackWrite(QSqlDatabase& c) { QSqlQuery(c).exec("ROLLBACK"); }

SourceRow sourceFrom(const QSqlQuery& q) {
    SourceRow s;
    s.id = q.value(0).toLongLong();
    s.libraryId = q.value(1).toLongLong();
    s.position = q.value(2).toLongLong();
    s.path = q.value(3).toString();
    s.kind = q.value(4).toString();
    s.contentHash = q.value(5).toString();
    s.size = q.value(6).toLongLong();
    s.units = q.value(7).toLongLong();
    s.tokenCount = q.value(8).toLongLong();
    s.status = q.value(9).toString();
    s.error = q.value(10).toString();
    s.skipped = q.value(11).toString();
    return s;
}
const char* kSourceColumns = "id, library_id, position, path, kind, content_hash, size, units, token_count, status, error, skipped";

PrefixStateRow stateFrom(const QSqlQuery& q) {
    PrefixStateRow r;
    r.id = q.value(0).toLongLong();
    r.libraryId = q.value(1).toLongLong();
    r.path = q.value(2).toString();
    r.modelFingerprint = q.value(3).toString();
    r.tokenHash = q.value(4).toString();
    r.tokenCount = q.value(5).toLongLong();
    r.bytes = q.value(6).toLongLong();
    r.lastUsed = q.value(7).toString();
    return r;
}
const char* kStateColumns = "id, library_id, path, model_fingerprint, token_hash, token_count, bytes, last_used";

}  // namespace

QString nowIso() { return QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs); }

namespace {
// Bytes free to this user on the disk holding `path`'s folder; -1 when that cannot be read.
qint64 freeBytesBeside(const QString& path) {
    struct statvfs v {};
    const QByteArray dir = QFile::encodeName(QFileInfo(path).absolutePath());
    return ::statvfs(dir.constData(), &v) == 0 ? static_cast<qint64>(v.f_bavail) * static_cast<qint64>(v.f_frsize) : -1;
}

// When SQLite cannot open or read the database because its disk is full (it must create the -wal
// and -shm files beside it), that is what to say: "not a usable database" would suggest the file
// is damaged, and a user might delete it. Empty when the disk has room.
QString fullDiskProblem(const QString& path, const QString& error, bool creating = false) {
    // A file SQLite itself finds damaged or foreign stays that, however full the disk.
    if (error.contains("not a database", Qt::CaseInsensitive) || error.contains("malformed", Qt::CaseInsensitive)) return {};
    const qint64 free = freeBytesBeside(path);
    if (free < 0 || free >= (1 << 20)) return {};
    if (creating)
        return QString("cannot create a library in %1: the disk is full (%2 KiB free; %3); free some space and run the command again")
            .arg(QFileInfo(path).absolutePath())
            .arg(free / 1024)
            .arg(error);
    return QString("cannot open %1: the disk holding it is full (%2 KiB free; %3). The library itself is not damaged: free some space and "
                   "run the command again")
        .arg(path)
        .arg(free / 1024)
        .arg(error);
}
}  // namespace

Result<std::unique_ptr<LibraryDb>> LibraryDb::open(const QString& path) {
    std::unique_ptr<LibraryDb> db(new LibraryDb());
    db->path_ = path;
    db->connectionPrefix_ = "quire-" + QUuid::createUuid().toString(QUuid::WithoutBraces);
    // A read-only file or folder (a read-only mount, a shared archive) is opened for reading only;
    // writes are refused with a message that says so.
    const QFileInfo file(path);
    db->folderWritable_ = QFileInfo(file.absolutePath()).isWritable();
    db->readOnly_ = (file.exists() && !file.isWritable()) || !db->folderWritable_;
    if (db->readOnly_ && !file.exists())
        return Status(ErrorCode::io_error, (file.absolutePath() + " is read-only and holds no Quire library yet").toStdString());
    // A database this open creates and then cannot set up (a full disk) goes again: the empty file
    // would later pass for a library.
    const bool existed = file.exists();
    auto removeCreated = qScopeGuard([&] {
        if (existed) return;
        db.reset();  // its connections close first
        if (QFileInfo(path).isFile() && QFileInfo(path).size() == 0) QFile::remove(path);
    });
    // Opened and checked; on a full disk (SQLite could not create its -wal/-shm files) once more for
    // reading only: SQLite reads a WAL database without new files, and every write says the disk is
    // full instead of every command failing.
    QSqlDatabase c;
    for (;;) {
        c = db->db();
        QString problem = c.isOpen() ? QString() : db->openError_;
        if (c.isOpen()) {
            // A damaged or foreign file must be refused before anything writes to it.
            QSqlQuery probe(c);
            const bool ran = probe.exec("PRAGMA quick_check") && probe.next();
            const QString verdict = ran ? probe.value(0).toString() : probe.lastError().text();
            if (ran && verdict != "ok")
                return Status(ErrorCode::io_error, (path + " is not a usable Quire library database (" + verdict + ")").toStdString());
            if (!ran) problem = verdict;
        }
        if (problem.isEmpty()) break;
        const QString full = fullDiskProblem(path, problem, !existed);
        if (full.isEmpty()) return Status(ErrorCode::io_error, (path + " is not a usable Quire library database (" + problem + ")").toStdString());
        if (db->readOnly_ || !file.exists()) return Status(ErrorCode::io_error, full.toStdString());
        c = QSqlDatabase();  // no handle may outlive the connection closed next
        db->readFromFullDisk();
    }
    {
        QSqlQuery tables(c);
        if (!tables.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"))
            return dbError("cannot list the tables of " + path, tables.lastError());
        QStringList names;
        while (tables.next()) names << tables.value(0).toString();
        if (!names.isEmpty() && !names.contains("libraries"))
            return Status(ErrorCode::invalid_argument,
                          (path + " is an SQLite database of another program (tables: " + names.join(", ") +
                           "); Quire leaves it untouched: choose another data folder (--data-dir)")
                              .toStdString());
    }
    int version = 0;
    {
        QSqlQuery q(c);
        if (!q.exec("PRAGMA user_version") || !q.next()) return dbError("cannot read the schema version of " + path, q.lastError());
        version = q.value(0).toInt();
        if (version > kSchemaVersion)
            return Status(ErrorCode::unsupported, (path + " was written by a newer Quire (schema " + QString::number(version) +
                                                   "); this version reads schema " + QString::number(kSchemaVersion))
                                                      .toStdString());
    }
    if (db->readOnly_) {
        // Schema 4 only changed how numbers are given (writes), and schema 5 added a cache of token ids
        // (sourceTokenIds reads none without it): a schema-3 database reads the same.
        if (version == 0)  // no schema at all: a library whose first setup never finished
            return Status(ErrorCode::io_error, (path + " holds no Quire library yet, and is " + db->readOnlyReason()).toStdString());
        if (version < 3)
            return Status(ErrorCode::io_error, (path + " is read-only and was written by an older Quire; this version must upgrade it "
                                                       "before reading it")
                                                   .toStdString());
        removeCreated.dismiss();
        return db;
    }
    // A new library on a full disk fails here, where its first pages are written.
    auto named = [&](Status st) {
        const QString full = st ? QString() : fullDiskProblem(path, QString::fromStdString(st.message()), !existed);
        return full.isEmpty() ? st : Status(ErrorCode::io_error, full.toStdString());
    };
    QUIRE_TRY(named(db->exec("PRAGMA journal_mode=WAL")));
    if (Status migrated = db->migrate(); !migrated) {
        // An upgrade the disk has no room for: a library a previous version wrote is read as it is.
        const bool full = !fullDiskProblem(path, QString::fromStdString(migrated.message()), !existed).isEmpty();
        if (!full || !existed || version < 3) return named(migrated);
        c = QSqlDatabase();  // no handle may outlive the connection closed next
        db->readFromFullDisk();
        if (!db->db().isOpen()) return named(migrated);
        removeCreated.dismiss();
        return db;
    }
    // A new database switched to WAL only now: record the journal files this connection uses.
    if (QSqlQuery q(c); q.exec("SELECT count(*) FROM sqlite_master") && q.next()) db->rememberJournal();
    removeCreated.dismiss();
    return db;
}

LibraryDb::~LibraryDb() { closeConnections(); }

void LibraryDb::closeConnections() {
    const QStringList names = QSqlDatabase::connectionNames();
    for (const QString& n : names)
        if (n.startsWith(connectionPrefix_)) {
            {
                QSqlDatabase c = QSqlDatabase::database(n, false);
                if (journalIsStale(n)) disableCheckpointOnClose(c);  // never checkpoint a stale journal over others' work
                c.close();
            }
            QSqlDatabase::removeDatabase(n);
        }
}

QString LibraryDb::connectionName() const {
    return connectionPrefix_ + "-" + QString::number(reinterpret_cast<quintptr>(QThread::currentThreadId()));
}

void LibraryDb::rememberJournal() const {
    if (readOnly_) return;
    const JournalFiles now = journalFiles(path_);
    std::lock_guard lock(journalsMutex_);
    if (now.present) journals_[connectionName()] = now;
}

bool LibraryDb::journalIsStale(const QString& connection) const {
    std::lock_guard lock(journalsMutex_);
    const auto it = journals_.find(connection);
    return it != journals_.end() && !(journalFiles(path_) == it->second);
}

Status LibraryDb::beforeWrite() {
    if (readOnly_) return Status(ErrorCode::io_error, (path_ + " is " + readOnlyReason() + ": Quire can read this library but not change it").toStdString());
    const QString name = connectionName();
    if (!journalIsStale(name)) return Status::ok();
    // The -wal or -shm file was deleted or replaced since this connection opened it: what it would
    // write goes to a journal no other process sees, and closing it normally would checkpoint that
    // journal's old pages over their work. Drop it without a checkpoint and open a fresh one.
    {
        QSqlDatabase stale = QSqlDatabase::database(name, false);
        disableCheckpointOnClose(stale);
        stale.close();
    }
    QSqlDatabase::removeDatabase(name);
    {
        std::lock_guard lock(journalsMutex_);
        journals_.erase(name);
    }
    QSqlDatabase fresh = db();
    if (!fresh.isOpen()) return Status(ErrorCode::io_error, ("cannot reopen " + path_ + ": " + openError_).toStdString());
    return Status::ok();
}

void LibraryDb::readFromFullDisk() {
    closeConnections();
    readOnly_ = true;
    diskFull_ = true;
    freeWhenOpened_ = std::max<qint64>(0, freeBytesBeside(path_));
}

bool LibraryDb::reopenForWriting(qint64 minimumFree) {
    if (!diskFull_) return !readOnly_;
    // SQLite's journal files alone fit in ~40 KiB; a library with less room than an answer or a
    // source's text needs would fail its next write after being reported writable.
    if (freeBytesBeside(path_) < minimumFree) return false;
    closeConnections();
    readOnly_ = false;
    diskFull_ = false;
    bool opened = false;
    {
        QSqlDatabase c = db();
        QSqlQuery q(c);
        // The same read as open()'s: where SQLite first needs its -wal and -shm files.
        opened = c.isOpen() && q.exec("PRAGMA quick_check") && q.next() && q.value(0).toString() == "ok";
    }
    if (opened && exec("PRAGMA journal_mode=WAL") && migrate()) return true;
    readFromFullDisk();
    return false;
}

QString LibraryDb::readOnlyReason() const {
    if (!diskFull_) return "read-only (the file or its folder cannot be written)";
    return QString("on a full disk (%1 KiB free when it was opened; free some space, then run the command again or reopen Quire)")
        .arg(freeWhenOpened_ / 1024);
}

QSqlDatabase LibraryDb::db() const {
    // One connection per thread: QSqlDatabase objects must not cross threads.
    const QString name = connectionPrefix_ + "-" + QString::number(reinterpret_cast<quintptr>(QThread::currentThreadId()));
    if (QSqlDatabase::contains(name)) return QSqlDatabase::database(name);
    QSqlDatabase c = QSqlDatabase::addDatabase("QSQLITE", name);
    if (readOnly_) {
        // In a folder that cannot be written, or on a full disk, SQLite cannot create the -shm file a
        // WAL database needs to be read; "immutable" reads the file as it is, without locks. That is
        // the whole library when there is no -wal file (the last writer's close folded its pages in).
        // A -wal holding pages, or a whole -shm (a wal-index is at least 32 KiB), may belong to a live
        // writer (the window, `quire serve`), which a full disk's last KiB still lets commit: then the
        // file is read with locks. An empty -wal and a stub -shm are what a failed open leaves.
        const QFileInfo wal(path_ + "-wal"), shm(path_ + "-shm");
        const bool liveWal = (wal.exists() && wal.size() > 0) || (shm.exists() && shm.size() >= 32768);
        const bool immutable = !folderWritable_ || (diskFull_ && !liveWal);
        const QString uri = "file:" + QString::fromLatin1(QUrl::toPercentEncoding(QFileInfo(path_).absoluteFilePath(), "/"));
        c.setDatabaseName(uri + (immutable ? "?mode=ro&immutable=1" : "?mode=ro"));
        c.setConnectOptions("QSQLITE_OPEN_READONLY;QSQLITE_OPEN_URI;QSQLITE_BUSY_TIMEOUT=10000");
    } else {
        c.setDatabaseName(path_);
        c.setConnectOptions("QSQLITE_BUSY_TIMEOUT=10000");
    }
    if (c.open()) {
        QSqlQuery q(c);
        // A connection without these settings must not be used: close it, so that every statement on
        // it fails with an error instead of silently skipping cascades or durability.
        if (!q.exec("PRAGMA foreign_keys=ON") || !q.exec("PRAGMA synchronous=FULL")) {
            openError_ = q.lastError().text();
            c.close();
        } else if (q.exec("SELECT count(*) FROM sqlite_master") && q.next()) {
            rememberJournal();  // the read opened the journal files this connection will use
        }
    } else {
        openError_ = c.lastError().text();
    }
    return c;
}

Status LibraryDb::exec(const QString& sql) {
    QSqlQuery q(db());
    if (!q.exec(sql)) return dbError("library database: " + sql.left(60), q.lastError());
    return Status::ok();
}

Status LibraryDb::migrate() {
    QSqlDatabase c = db();
    auto readVersion = [&](int& version) -> Status {
        QSqlQuery q(c);
        if (!q.exec("PRAGMA user_version") || !q.next()) return dbError("cannot read the schema version", q.lastError());
        version = q.value(0).toInt();
        return Status::ok();
    };
    int version = 0;
    QUIRE_TRY(readVersion(version));
    while (version < kSchemaVersion) {
        QUIRE_TRY(beginWrite(c, "schema migration"));
        // Another process may have migrated while this one waited for the lock.
        if (Status st = readVersion(version); !st || version >= kSchemaVersion) {
            rollbackWrite(c);
            if (!st) return st;
            break;
        }
        // Statements end with ';' at the end of a line (a trigger's body keeps its inner ';' on its line).
        const QStringList statements = QString(kMigrations[version]).split(QRegularExpression(";[ \\t]*\\n"), Qt::SkipEmptyParts);
        for (const QString& s : statements) {
            if (s.trimmed().isEmpty()) continue;
            QSqlQuery m(c);
            if (!m.exec(s)) {
                const QSqlError e = m.lastError();
                rollbackWrite(c);
                return dbError(QString("schema migration %1 failed").arg(version + 1), e);
            }
        }
        QSqlQuery v(c);
        if (!v.exec(QString("PRAGMA user_version=%1").arg(version + 1))) {
            rollbackWrite(c);
            return dbError("cannot record the schema version", v.lastError());
        }
        QUIRE_TRY(commitWrite(c, "schema migration"));
        ++version;
    }
    return Status::ok();
}

Status LibraryDb::integrityCheck() {
    QSqlQuery q(db());
    if (!q.exec("PRAGMA integrity_check") || !q.next()) return dbError("integrity check", q.lastError());
    const QString result = q.value(0).toString();
    if (result != "ok") return Status(ErrorCode::io_error, ("integrity check failed: " + result).toStdString());
    return Status::ok();
}

namespace {
// Library names are stored and compared trimmed and in Unicode normalisation form C: "café" typed
// with a composed é and with e + combining accent is one name, as it looks.
QString canonicalName(const QString& name) { return name.trimmed().normalized(QString::NormalizationForm_C); }
constexpr qsizetype kMaxLibraryName = 200;  // characters: a name is a label in lists and menus

Status checkLibraryName(const QString& name) {
    if (name.trimmed().isEmpty()) return Status(ErrorCode::invalid_argument, "a library needs a name");
    if (const qsizetype n = canonicalName(name).size(); n > kMaxLibraryName)
        return Status(ErrorCode::invalid_argument, "a library name can have at most " + std::to_string(kMaxLibraryName) +
                                                       " characters; this one has " + std::to_string(n));
    // A line break or another control character would break every listing that shows the name.
    for (const QChar c : name)
        if (c.category() == QChar::Other_Control)
            return Status(ErrorCode::invalid_argument, "a library name cannot contain a line break, a tab or another control character");
    return Status::ok();
}
}  // namespace

Result<qint64> LibraryDb::createLibrary(const QString& given, const QString& systemPrompt) {
    QUIRE_TRY(checkLibraryName(given));
    QUIRE_TRY(beforeWrite());
    const QString name = canonicalName(given);
    // An older name stored in another normalisation form is the same name too.
    if (auto existing = library(name); existing && existing.value())
        return Status(ErrorCode::invalid_argument, ("a library named '" + existing.value()->name + "' already exists").toStdString());
    QSqlQuery q(db());
    q.prepare("INSERT INTO libraries(id, name, system_prompt, created)"
              " VALUES((SELECT last + 1 FROM id_floor WHERE kind = 'libraries'), ?, ?, ?)");
    q.addBindValue(name);
    q.addBindValue(sqlText(systemPrompt));
    q.addBindValue(nowIso());
    if (!q.exec()) {
        if (q.lastError().text().contains("UNIQUE"))
            return Status(ErrorCode::invalid_argument, ("a library named '" + name + "' already exists").toStdString());
        return dbError("cannot create library", q.lastError());
    }
    return q.lastInsertId().toLongLong();
}

Result<std::optional<LibraryRow>> LibraryDb::library(qint64 id) {
    QSqlQuery q(db());
    q.prepare("SELECT id, name, system_prompt, created FROM libraries WHERE id = ?");
    q.addBindValue(id);
    QUIRE_TRY(run(q, "find library"));
    if (!q.next()) return std::optional<LibraryRow>();
    return std::optional<LibraryRow>(LibraryRow{q.value(0).toLongLong(), q.value(1).toString(), q.value(2).toString(), q.value(3).toString()});
}

Result<std::optional<LibraryRow>> LibraryDb::library(const QString& given) {
    const QString name = canonicalName(given);
    QSqlQuery q(db());
    q.prepare("SELECT id, name, system_prompt, created FROM libraries WHERE name = ?");
    q.addBindValue(name);
    QUIRE_TRY(run(q, "find library"));
    if (q.next())
        return std::optional<LibraryRow>(LibraryRow{q.value(0).toLongLong(), q.value(1).toString(), q.value(2).toString(), q.value(3).toString()});
    // Names stored before they were normalised: compared as they look.
    auto all = libraries();
    if (!all) return all.status();
    for (const LibraryRow& l : all.value())
        if (canonicalName(l.name) == name) return std::optional<LibraryRow>(l);
    return std::optional<LibraryRow>();
}

Result<QList<LibraryRow>> LibraryDb::libraries() {
    QSqlQuery q(db());
    q.prepare("SELECT id, name, system_prompt, created FROM libraries ORDER BY name");
    QUIRE_TRY(run(q, "list libraries"));
    QList<LibraryRow> out;
    while (q.next()) out.append({q.value(0).toLongLong(), q.value(1).toString(), q.value(2).toString(), q.value(3).toString()});
    return out;
}

Status LibraryDb::deleteLibrary(qint64 id) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("DELETE FROM libraries WHERE id = ?");
    q.addBindValue(id);
    return run(q, "delete library");
}

Status LibraryDb::renameLibrary(qint64 id, const QString& given, const QString& expectedName) {
    QUIRE_TRY(checkLibraryName(given));
    QUIRE_TRY(beforeWrite());
    const QString name = canonicalName(given);
    if (auto existing = library(name); existing && existing.value() && existing.value()->id != id)
        return Status(ErrorCode::invalid_argument, ("there is already a library named '" + existing.value()->name + "'").toStdString());
    QSqlQuery q(db());
    q.prepare(expectedName.isNull() ? "UPDATE libraries SET name = ? WHERE id = ?" : "UPDATE libraries SET name = ? WHERE id = ? AND name = ?");
    q.addBindValue(sqlText(name));
    q.addBindValue(id);
    if (!expectedName.isNull()) q.addBindValue(sqlText(expectedName));
    QUIRE_TRY(run(q, "rename library"));
    if (!expectedName.isNull() && q.numRowsAffected() != 1)
        return Status(ErrorCode::invalid_argument, ("library '" + expectedName + "' was renamed or deleted meanwhile").toStdString());
    return Status::ok();
}

Status LibraryDb::renameChat(qint64 chatId, const QString& title) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("UPDATE chats SET title = ? WHERE id = ?");
    q.addBindValue(sqlText(title.trimmed()));
    q.addBindValue(chatId);
    return run(q, "rename chat");
}

Status LibraryDb::deleteChat(qint64 chatId) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("DELETE FROM chats WHERE id = ?");
    q.addBindValue(chatId);
    return run(q, "delete chat");
}

Result<qint64> LibraryDb::addSource(const SourceRow& s, const QString& text) {
    QUIRE_TRY(beforeWrite());
    QSqlDatabase c = db();
    QUIRE_TRY(beginWrite(c, "add source"));
    auto fail = [&](const Status& st) {
        rollbackWrite(c);
        return st;
    };
    QSqlQuery pos(c);
    pos.prepare("SELECT COALESCE(MAX(position), -1) + 1 FROM sources WHERE library_id = ?");
    pos.addBindValue(s.libraryId);
    if (Status st = run(pos, "next position"); !st || !pos.next()) return fail(st ? dbError("next position", pos.lastError()) : st);
    const qint64 position = pos.value(0).toLongLong();
    QSqlQuery q(c);
    q.prepare("INSERT INTO sources(library_id, position, path, kind, content_hash, size, units, token_count, status, error, skipped, added)"
              " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const QVariant& v : {QVariant(s.libraryId), QVariant(position), sqlText(s.path), sqlText(s.kind), sqlText(s.contentHash),
                              QVariant(s.size), QVariant(s.units), QVariant(s.tokenCount), sqlText(s.status), sqlText(s.error),
                              sqlText(s.skipped), QVariant(nowIso())})
        q.addBindValue(v);
    if (!q.exec()) {
        const bool dup = q.lastError().text().contains("UNIQUE");
        return fail(dup ? Status(ErrorCode::invalid_argument, "already in this library")
                        : dbError("cannot add source", q.lastError()));
    }
    const qint64 id = q.lastInsertId().toLongLong();
    QSqlQuery t(c);
    t.prepare("INSERT INTO source_texts(source_id, text) VALUES(?, ?)");
    t.addBindValue(id);
    t.addBindValue(sqlText(text));
    if (Status st = run(t, "store source text"); !st) return fail(st);
    QUIRE_TRY(commitWrite(c, "add source"));
    return id;
}

Result<QList<SourceRow>> LibraryDb::sources(qint64 libraryId) {
    QSqlQuery q(db());
    q.prepare(QString("SELECT %1 FROM sources WHERE library_id = ? ORDER BY position").arg(kSourceColumns));
    q.addBindValue(libraryId);
    QUIRE_TRY(run(q, "list sources"));
    QList<SourceRow> out;
    while (q.next()) out.append(sourceFrom(q));
    return out;
}

Result<QString> LibraryDb::sourceText(qint64 sourceId) {
    QSqlQuery q(db());
    q.prepare("SELECT text FROM source_texts WHERE source_id = ?");
    q.addBindValue(sourceId);
    QUIRE_TRY(run(q, "read source text"));
    if (!q.next()) return QString();
    return q.value(0).toString();
}

Status LibraryDb::removeSource(qint64 sourceId) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("DELETE FROM sources WHERE id = ?");
    q.addBindValue(sourceId);
    return run(q, "remove source");
}

Status LibraryDb::setSourceTokens(qint64 sourceId, qint64 tokens) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("UPDATE sources SET token_count = ? WHERE id = ?");
    q.addBindValue(tokens);
    q.addBindValue(sourceId);
    return run(q, "record token count");
}

Result<std::optional<QByteArray>> LibraryDb::sourceTokenIds(qint64 sourceId, const QString& key) {
    QSqlQuery q(db());
    q.prepare("SELECT ids FROM source_tokens WHERE source_id = ? AND key = ?");
    q.addBindValue(sourceId);
    q.addBindValue(key);
    if (!q.exec()) {
        if (readOnly_) return std::optional<QByteArray>();  // a schema 3 or 4 library read as it is: no such table
        return dbError("library database (read token ids)", q.lastError());
    }
    if (!q.next()) return std::optional<QByteArray>();
    return std::optional<QByteArray>(q.value(0).toByteArray());
}

Status LibraryDb::setSourceTokenIds(qint64 sourceId, const QString& key, const QByteArray& ids) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("INSERT OR REPLACE INTO source_tokens(source_id, key, ids) VALUES(?, ?, ?)");
    q.addBindValue(sourceId);
    q.addBindValue(key);
    q.addBindValue(ids);
    return run(q, "record token ids");
}

Result<qint64> LibraryDb::createChat(qint64 libraryId, const QString& title) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare(kInsertChat);
    q.addBindValue(libraryId);
    q.addBindValue(sqlText(title));
    q.addBindValue(nowIso());
    QUIRE_TRY(run(q, "create chat"));
    return q.lastInsertId().toLongLong();
}

Result<std::optional<ChatRow>> LibraryDb::chat(qint64 chatId) {
    QSqlQuery q(db());
    q.prepare("SELECT id, library_id, title, created, state_path, state_tokens FROM chats WHERE id = ?");
    q.addBindValue(chatId);
    QUIRE_TRY(run(q, "find chat"));
    if (!q.next()) return std::optional<ChatRow>();
    return std::optional<ChatRow>(ChatRow{q.value(0).toLongLong(), q.value(1).toLongLong(), q.value(2).toString(),
                                          q.value(3).toString(), q.value(4).toString(), q.value(5).toLongLong()});
}

Result<QList<ChatRow>> LibraryDb::chats(qint64 libraryId) {
    QSqlQuery q(db());
    q.prepare("SELECT id, library_id, title, created, state_path, state_tokens FROM chats WHERE library_id = ? ORDER BY id");
    q.addBindValue(libraryId);
    QUIRE_TRY(run(q, "list chats"));
    QList<ChatRow> out;
    while (q.next())
        out.append({q.value(0).toLongLong(), q.value(1).toLongLong(), q.value(2).toString(), q.value(3).toString(),
                    q.value(4).toString(), q.value(5).toLongLong()});
    return out;
}

Status LibraryDb::setChatState(qint64 chatId, const QString& statePath, qint64 tokens) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("UPDATE chats SET state_path = ?, state_tokens = ? WHERE id = ?");
    q.addBindValue(sqlText(statePath));
    q.addBindValue(tokens);
    q.addBindValue(chatId);
    return run(q, "record chat state");
}

Result<qint64> LibraryDb::addMessage(const MessageRow& m) {
    QUIRE_TRY(beforeWrite());
    return insertMessage(m);
}

Result<qint64> LibraryDb::insertMessage(const MessageRow& m) {
    QSqlQuery q(db());
    q.prepare("INSERT INTO messages(id, chat_id, role, content, tokens, created, first_token_seconds, tokens_per_second, stopped)"
              " VALUES((SELECT last + 1 FROM id_floor WHERE kind = 'messages'), ?, ?, ?, ?, ?, ?, ?, ?)");
    q.addBindValue(m.chatId);
    q.addBindValue(sqlText(m.role));
    q.addBindValue(sqlText(m.content));
    q.addBindValue(m.tokens);
    q.addBindValue(nowIso());
    q.addBindValue(m.firstTokenSeconds);
    q.addBindValue(m.tokensPerSecond);
    q.addBindValue(m.stopped ? 1 : 0);
    QUIRE_TRY(run(q, "store message"));
    return q.lastInsertId().toLongLong();
}

Result<qint64> LibraryDb::lastMessageId(qint64 chatId) {
    QSqlQuery q(db());
    q.prepare("SELECT COALESCE(MAX(id), 0) FROM messages WHERE chat_id = ?");
    q.addBindValue(chatId);
    QUIRE_TRY(run(q, "last message"));
    if (!q.next()) return dbError("last message", q.lastError());
    return q.value(0).toLongLong();
}

Result<qint64> LibraryDb::recordExchange(qint64 chatId, qint64 libraryId, const QString& title, const MessageRow& question,
                                        const MessageRow& answer, qint64 afterMessage) {
    QUIRE_TRY(beforeWrite());
    QSqlDatabase c = db();
    QUIRE_TRY(beginWrite(c, "record chat"));
    auto fail = [&](const Status& st) {
        rollbackWrite(c);
        return st;
    };
    // Deleted while the answer was being written (another process): said so, not a FOREIGN KEY error.
    QSqlQuery exists(c);
    if (chatId != 0) {
        exists.prepare("SELECT 1 FROM chats WHERE id = ? AND library_id = ?");
        exists.addBindValue(chatId);
    } else {
        exists.prepare("SELECT 1 FROM libraries WHERE id = ?");
    }
    exists.addBindValue(libraryId);
    if (Status st = run(exists, "find chat"); !st) return fail(st);
    if (!exists.next())
        return fail(Status(ErrorCode::invalid_argument,
                           chatId != 0 ? "chat " + std::to_string(chatId) + " was deleted while this answer was written; the answer was not saved"
                                       : std::string("the library was deleted while this answer was written; the answer was not saved")));
    if (chatId != 0 && afterMessage >= 0) {
        auto last = lastMessageId(chatId);  // inside this transaction (one connection per thread)
        if (!last) return fail(last.status());
        if (last.value() != afterMessage)
            return fail(Status(ErrorCode::invalid_argument, "chat " + std::to_string(chatId) +
                                                                " got another answer (from another window or process) while this one was "
                                                                "written; this answer was not saved: ask again to follow on from there"));
    }
    if (chatId == 0) {
        QSqlQuery q(c);
        q.prepare(kInsertChat);
        q.addBindValue(libraryId);
        q.addBindValue(sqlText(title));
        q.addBindValue(nowIso());
        if (Status st = run(q, "create chat"); !st) return fail(st);
        chatId = q.lastInsertId().toLongLong();
    }
    for (MessageRow m : {question, answer}) {
        m.chatId = chatId;
        if (auto id = insertMessage(m); !id) return fail(id.status());
    }
    QUIRE_TRY(commitWrite(c, "record chat"));
    return chatId;
}

Result<QList<MessageRow>> LibraryDb::messages(qint64 chatId) {
    QSqlQuery q(db());
    q.prepare("SELECT id, chat_id, role, content, tokens, created, first_token_seconds, tokens_per_second, stopped FROM messages"
              " WHERE chat_id = ? ORDER BY id");
    q.addBindValue(chatId);
    QUIRE_TRY(run(q, "list messages"));
    QList<MessageRow> out;
    while (q.next())
        out.append({q.value(0).toLongLong(), q.value(1).toLongLong(), q.value(2).toString(), q.value(3).toString(),
                    q.value(4).toByteArray(), q.value(5).toString(), q.value(6).toDouble(), q.value(7).toDouble(), q.value(8).toInt() != 0});
    return out;
}

Status LibraryDb::replaceLastExchange(qint64 chatId, const MessageRow& question, const MessageRow& answer, qint64 afterMessage) {
    QUIRE_TRY(beforeWrite());
    QSqlDatabase c = db();
    QUIRE_TRY(beginWrite(c, "regenerate"));
    auto fail = [&](const Status& st) {
        rollbackWrite(c);
        return st;
    };
    QSqlQuery last(c);
    last.prepare("SELECT id, role FROM messages WHERE chat_id = ? ORDER BY id DESC LIMIT 2");
    last.addBindValue(chatId);
    if (Status st = run(last, "find the last exchange"); !st) return fail(st);
    QList<QPair<qint64, QString>> rows;
    while (last.next()) rows.append({last.value(0).toLongLong(), last.value(1).toString()});
    if (rows.size() < 2 || rows[0].second != "assistant" || rows[1].second != "user")
        return fail(Status(ErrorCode::invalid_argument, QString("chat %1 does not end with a question and its answer").arg(chatId).toStdString()));
    if (afterMessage >= 0 && rows[0].first != afterMessage)
        return fail(Status(ErrorCode::invalid_argument, "chat " + std::to_string(chatId) +
                                                            " got another answer (from another window or process) while this one was "
                                                            "regenerated; the new answer was not saved and the chat is unchanged"));
    QSqlQuery del(c);
    del.prepare("DELETE FROM messages WHERE id IN (?, ?)");
    del.addBindValue(rows[0].first);
    del.addBindValue(rows[1].first);
    if (Status st = run(del, "remove the last exchange"); !st) return fail(st);
    for (MessageRow m : {question, answer}) {
        m.chatId = chatId;
        if (auto id = insertMessage(m); !id) return fail(id.status());
    }
    return commitWrite(c, "regenerate");
}

Result<qint64> LibraryDb::addPrefixState(const PrefixStateRow& r) {
    QUIRE_TRY(beforeWrite());
    // One row per file: a second save of the same state (two processes reading one library) updates it.
    QSqlQuery q(db());
    q.prepare("INSERT INTO prefix_states(library_id, path, model_fingerprint, token_hash, token_count, bytes, last_used) VALUES(?, ?, ?, ?, ?, ?, ?)"
              " ON CONFLICT(path) DO UPDATE SET library_id = excluded.library_id, model_fingerprint = excluded.model_fingerprint,"
              " token_hash = excluded.token_hash, token_count = excluded.token_count, bytes = excluded.bytes, last_used = excluded.last_used"
              " RETURNING id");
    q.addBindValue(r.libraryId);
    q.addBindValue(sqlText(r.path));
    q.addBindValue(sqlText(r.modelFingerprint));
    q.addBindValue(sqlText(r.tokenHash));
    q.addBindValue(r.tokenCount);
    q.addBindValue(r.bytes);
    q.addBindValue(nowIso());
    QUIRE_TRY(run(q, "record prefix state"));
    if (!q.next()) return dbError("record prefix state", q.lastError());
    return q.value(0).toLongLong();
}

Result<QList<PrefixStateRow>> LibraryDb::prefixStates(qint64 libraryId) {
    QSqlQuery q(db());
    q.prepare(QString("SELECT %1 FROM prefix_states WHERE library_id = ? ORDER BY token_count DESC").arg(kStateColumns));
    q.addBindValue(libraryId);
    QUIRE_TRY(run(q, "list prefix states"));
    QList<PrefixStateRow> out;
    while (q.next()) out.append(stateFrom(q));
    return out;
}

Result<QList<PrefixStateRow>> LibraryDb::allPrefixStates() {
    QSqlQuery q(db());
    q.prepare(QString("SELECT %1 FROM prefix_states ORDER BY last_used ASC").arg(kStateColumns));
    QUIRE_TRY(run(q, "list prefix states"));
    QList<PrefixStateRow> out;
    while (q.next()) out.append(stateFrom(q));
    return out;
}

Status LibraryDb::touchPrefixState(qint64 id) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("UPDATE prefix_states SET last_used = ? WHERE id = ?");
    q.addBindValue(nowIso());
    q.addBindValue(id);
    return run(q, "touch prefix state");
}

Status LibraryDb::deletePrefixState(qint64 id) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("DELETE FROM prefix_states WHERE id = ?");
    q.addBindValue(id);
    return run(q, "delete prefix state");
}

Result<QString> LibraryDb::setting(const QString& key) {
    QSqlQuery q(db());
    q.prepare("SELECT value FROM settings WHERE key = ?");
    q.addBindValue(key);
    QUIRE_TRY(run(q, "read setting"));
    return q.next() ? q.value(0).toString() : QString();
}

Status LibraryDb::setSetting(const QString& key, const QString& value) {
    QUIRE_TRY(beforeWrite());
    QSqlQuery q(db());
    q.prepare("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    q.addBindValue(key);
    q.addBindValue(sqlText(value));
    return run(q, "write setting");
}

}  // namespace quire::app
