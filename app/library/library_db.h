#pragma once
// LibraryDb: Quire's library in SQLite — libraries, sources (with their extracted text), chats,
// messages and saved prefix states. WAL mode, a schema version with migrations, every statement's
// result checked, one connection per thread (Qt's rule for QSqlDatabase).

#include <QByteArray>
#include <QList>
#include <QSqlDatabase>
#include <QString>
#include <QStringList>

#include <map>
#include <mutex>
#include <optional>

#include "library/journal_guard.h"
#include "status.h"

namespace quire::app {

struct LibraryRow {
    qint64 id = 0;
    QString name;
    QString systemPrompt;
    QString created;
};

struct SourceRow {
    qint64 id = 0;
    qint64 libraryId = 0;
    qint64 position = 0;
    QString path;
    QString kind;  // "pdf", "code", "text"
    QString contentHash;
    qint64 size = 0;
    qint64 units = 0;  // pages or files
    qint64 tokenCount = 0;
    QString status;  // "ready", "error", "needs password"
    QString error;
    QString skipped;  // what was left out and why, one line each
};

struct ChatRow {
    qint64 id = 0;
    qint64 libraryId = 0;
    QString title;
    QString created;
    QString statePath;
    qint64 stateTokens = 0;
};

struct MessageRow {
    qint64 id = 0;
    qint64 chatId = 0;
    QString role;
    QString content;
    QByteArray tokens;  // int32 token ids exactly as fed (assistant answers) or encoded (questions)
    QString created;
    double firstTokenSeconds = 0;
    double tokensPerSecond = 0;
    bool stopped = false;  // an answer cut short by Stop (schema 3)
};

struct PrefixStateRow {
    qint64 id = 0;
    qint64 libraryId = 0;
    QString path;
    QString modelFingerprint;
    QString tokenHash;
    qint64 tokenCount = 0;
    qint64 bytes = 0;
    QString lastUsed;
};

class LibraryDb {
public:
    static constexpr int kSchemaVersion = 5;

    // Opens (creating if needed) the database file; refuses a file that is not a Quire library or
    // is damaged, without touching it.
    static Result<std::unique_ptr<LibraryDb>> open(const QString& path);
    ~LibraryDb();
    LibraryDb(const LibraryDb&) = delete;
    LibraryDb& operator=(const LibraryDb&) = delete;

    const QString& path() const { return path_; }
    // The file or its folder cannot be written, or its disk was full when it was opened: reading
    // works, every write fails saying so (readOnlyReason, "read-only (...)" or "on a full disk (...)").
    bool readOnly() const { return readOnly_; }
    QString readOnlyReason() const;
    bool diskFull() const { return diskFull_; }
    // Opened read-only on a full disk: opens for writing again (upgrading the schema if it is behind)
    // once `minimumFree` bytes are free and SQLite can make its journal files; false, and still
    // read-only, while not. A delete, which needs little room, asks for less than an answer does. Closes every thread's connection: call it only while no other thread
    // uses this object.
    bool reopenForWriting(qint64 minimumFree = 256 << 10);
    Status integrityCheck();

    Result<qint64> createLibrary(const QString& name, const QString& systemPrompt);
    Result<std::optional<LibraryRow>> library(const QString& name);
    Result<std::optional<LibraryRow>> library(qint64 id);  // none when no library has this number (any more)
    Result<QList<LibraryRow>> libraries();
    Status deleteLibrary(qint64 id);
    // With `expectedName`, only while the library still has that name: of two processes renaming one
    // library at once, the second is told it was renamed, instead of both reporting success.
    Status renameLibrary(qint64 id, const QString& name, const QString& expectedName = {});

    // Adds a source at the end of the library (its text stored alongside) in one transaction.
    Result<qint64> addSource(const SourceRow& source, const QString& text);
    Result<QList<SourceRow>> sources(qint64 libraryId);
    Result<QString> sourceText(qint64 sourceId);
    Status removeSource(qint64 sourceId);
    Status setSourceTokens(qint64 sourceId, qint64 tokens);
    // A source's token ids as stored under `key` (the tokenizer and the text they came from): none
    // when none are stored, under another key, or the library predates schema 5 (read-only).
    Result<std::optional<QByteArray>> sourceTokenIds(qint64 sourceId, const QString& key);
    Status setSourceTokenIds(qint64 sourceId, const QString& key, const QByteArray& ids);

    Result<qint64> createChat(qint64 libraryId, const QString& title);
    Result<std::optional<ChatRow>> chat(qint64 chatId);
    Result<QList<ChatRow>> chats(qint64 libraryId);
    Status setChatState(qint64 chatId, const QString& statePath, qint64 tokens);
    Status renameChat(qint64 chatId, const QString& title);
    Status deleteChat(qint64 chatId);  // with its messages
    Result<qint64> addMessage(const MessageRow& message);
    // A question and its answer in one transaction, with the chat itself when chatId is 0 (a new chat
    // titled `title`): a kill leaves all of it or none. Returns the chat's id. afterMessage >= 0: the
    // chat's last message id the answer followed on from; refused when another answer was recorded
    // since (two follow-ups to one chat at once), instead of storing both as if one followed the other.
    Result<qint64> recordExchange(qint64 chatId, qint64 libraryId, const QString& title, const MessageRow& question,
                                  const MessageRow& answer, qint64 afterMessage = -1);
    // The id of the chat's last message, 0 when it has none.
    Result<qint64> lastMessageId(qint64 chatId);
    // Regenerate: the chat's last question and answer replaced by these, in one transaction; refused
    // when the chat does not end with a question and its answer.
    // afterMessage >= 0: the chat's last message when the new answer began; refused if it changed.
    Status replaceLastExchange(qint64 chatId, const MessageRow& question, const MessageRow& answer, qint64 afterMessage = -1);
    Result<QList<MessageRow>> messages(qint64 chatId);

    // Records a state file, or updates its row when the file is already recorded (one row per path).
    Result<qint64> addPrefixState(const PrefixStateRow& row);
    Result<QList<PrefixStateRow>> prefixStates(qint64 libraryId);
    Result<QList<PrefixStateRow>> allPrefixStates();  // least recently used first
    Status touchPrefixState(qint64 id);
    Status deletePrefixState(qint64 id);

    Result<QString> setting(const QString& key);
    Status setSetting(const QString& key, const QString& value);

private:
    LibraryDb() = default;
    QSqlDatabase db() const;
    QString connectionName() const;  // this thread's connection
    Status migrate();
    Status exec(const QString& sql);
    Result<qint64> insertMessage(const MessageRow& message);
    // Every write starts here: refused when read-only; a connection whose journal files were deleted
    // or replaced is dropped without a checkpoint and reopened (see journal_guard.h).
    Status beforeWrite();
    void closeConnections();  // every thread's connection to the file
    // Opens for reading only from now on: SQLite could not make its journal files (a full disk).
    void readFromFullDisk();
    void rememberJournal() const;
    bool journalIsStale(const QString& connection) const;

    QString path_;
    QString connectionPrefix_;
    bool readOnly_ = false;
    bool folderWritable_ = true;
    bool diskFull_ = false;
    qint64 freeWhenOpened_ = 0;
    bool walBeforeOpen_ = false;  // a -wal file existed when open() began (maybe a live writer's)  // opened for reading only because SQLite could not create its journal files
    mutable std::map<QString, JournalFiles> journals_;  // connection -> the journal files it opened
    mutable std::mutex journalsMutex_;                   // connections live on several threads
    mutable QString openError_;  // why the last connection could not be opened
};

QString nowIso();

// How a write that met a full disk (SQLITE_FULL) is said; a caller that can free space looks for it.
inline constexpr const char* kDiskFullWords = "the disk holding the library is full";
inline bool isDiskFull(const Status& st) { return !st && st.message().find(kDiskFullWords) != std::string::npos; }

}  // namespace quire::app
