#pragma once
// SessionService: Quire's main job. Reading a library prefills its context once and keeps the
// state after it (in memory and as a state file recorded in SQLite, under a disk budget with
// least-recently-used eviction). Asking forks that prefix state, appends the question and streams
// the answer; a follow-up continues its chat's own state. Saved states that do not match the model
// or the tokens are ignored and rebuilt, with a notice. Runs on whatever thread calls it.

#include <QString>
#include <QStringList>

#include <atomic>
#include <functional>
#include <map>
#include <memory>

#include "context_builder.h"
#include "read_eta.h"
#include "engine.h"
#include "generator.h"
#include "library/library_db.h"

namespace quire::app {

struct SessionOptions {
    QString stateDir;                          // where state files go
    qint64 stateBudgetBytes = 64LL << 30;      // disk budget for prefix states
    qint64 contextLimit = 1 << 20;             // tokens
    qint64 conversationReserve = 8192;         // tokens kept free for questions and answers
    int64_t chunk = 2048;                      // prefill chunk (progress and cancel granularity)
    // Reads of at least this many tokens store their measured cost for the next ETA (read_eta.h).
    qint64 readCostMinTokens = ReadEta::kMinTokensToLearn;
};

struct ReadProgress {
    qint64 done = 0, total = 0;  // tokens of this read
    qint64 position = 0;         // where in the context the read is (tokens of the context read)
    double tokensPerSecond = 0, etaSeconds = 0;
};

struct ReadResult {
    qint64 contextTokens = 0;
    qint64 prefilledTokens = 0;  // tokens actually computed now (0 when a saved state covered all)
    bool reusedState = false;
    QStringList notices;
};

struct AskOptions {
    qint64 chatId = 0;  // 0: a new chat
    // Regenerate: answer the chat's last question again from the conversation before it, and
    // replace that question and answer in the chat (chatId required).
    bool replaceLast = false;
    bool thinking = true;
    GenerateOptions generation;
    std::function<void(const QString&)> onText;
    std::function<void(const ReadProgress&)> onProgress;
    // What the ask does after the answer when it takes a while (saving the library's state: seconds at 1M).
    std::function<void(const QString&)> onStatus;
    const std::atomic<bool>* cancel = nullptr;
};

struct AskResult {
    qint64 chatId = 0;
    QString answer;
    QString stopReason;
    qint64 contextTokens = 0;
    qint64 questionTokens = 0;
    qint64 prefilledTokens = 0;  // from the engine's counters: everything computed by this ask
    bool reusedState = false;
    QStringList notices;
    double firstTokenSeconds = 0, tokensPerSecond = 0;  // from the answer's start (the question read)
    double secondsBeforeAnswer = 0;  // from ask() to the answer's start: reading or loading states, the chat
};

// Deletes NAME.qstate.tmp.PID files in stateDir left by a process that no longer exists (a save that
// was killed); files of a live process are a save in progress and stay.
void removeStaleTemporaryFiles(const QString& stateDir);

class SessionService {
public:
    SessionService(LibraryDb& db, Engine& engine, SessionOptions options);

    // The library's context; refused when it does not fit (the limit less the conversation reserve)
    // or when the library has sources and none of them could be read.
    Result<AssembledContext> assemble(const LibraryRow& library);
    // The same without those checks: what the library needs, for the gauge.
    Result<AssembledContext> measure(const LibraryRow& library);
    qint64 contextLimit() const { return options_.contextLimit; }
    // How many times a library was tokenized: assemble() and measure() keep the last context of
    // each library and tokenize again only when what it is made of changed.
    qint64 tokenizations() const { return tokenizations_; }
    // How many sources were encoded rather than read from the ids kept in the database.
    qint64 sourcesEncoded() const { return sourcesEncoded_; }
    qint64 conversationReserve() const { return options_.conversationReserve; }
    // The model, precision and regime a saved state or a stored reading cost belongs to.
    QString fingerprint() const;
    // The longest saved state of this model whose tokens begin `tokens` (the library's context as
    // assembled now), without loading it; none when the library changed before every saved point.
    Result<std::optional<PrefixStateRow>> usableState(const LibraryRow& library, const std::vector<int32_t>& tokens);
    Result<ReadResult> read(const LibraryRow& library, const std::function<void(const ReadProgress&)>& onProgress,
                            const std::atomic<bool>* cancel);
    Result<AskResult> ask(const LibraryRow& library, const QString& question, const AskOptions& options);
    // The library's prefix state, read or loaded from its saved state when needed, for callers that
    // continue it with a conversation of their own (the HTTP server forks it). Owned by the service.
    Result<const Sequence*> prefixState(const LibraryRow& library, const std::function<void(const ReadProgress&)>& onProgress,
                                        const std::atomic<bool>* cancel, ReadResult& info);

private:
    static bool coversPrefix(const PrefixStateRow& r, const std::vector<int32_t>& tokens);
    Result<AssembledContext> assembleWithin(const LibraryRow& library, bool enforceLimits);
    // The last context assembled per (library, with or without the limits), and a hash of all it was
    // made from (the system prompt, each ready source's id, path and text, the limits): a server
    // answering many questions on a 1M-token library tokenizes it once, not per question.
    struct Assembled {
        QByteArray key;
        AssembledContext context;
    };
    std::map<std::pair<qint64, bool>, Assembled> assembled_;
    qint64 tokenizations_ = 0;
    qint64 sourcesEncoded_ = 0;
    struct Prefix {
        std::vector<int32_t> tokens;
        std::unique_ptr<Sequence> seq;
        qint64 stateId = -1;  // the prefix state row on disk for exactly these tokens (-1: none saved)
        bool unsaved = false;  // read since the last save, which is still to come (ensurePrefix's deferSave)
    };
    // Loads into `prefix` the longest saved state of this model whose tokens begin `tokens`, dropping
    // damaged ones; true when a file vanished while it looked (on firstLook only: a second look is due).
    Result<bool> loadSavedPrefix(const LibraryRow& library, const std::vector<int32_t>& tokens, Prefix& prefix, ReadResult& info,
                                 bool firstLook);
    // deferSave: what was read is left unsaved (Prefix::unsaved) for the caller to save with savePrefix
    // once it answered; otherwise it is saved before returning.
    Result<Prefix*> ensurePrefix(const LibraryRow& library, const std::function<void(const ReadProgress&)>& onProgress,
                                 const std::atomic<bool>* cancel, ReadResult& info, bool deferSave = false);
    // Saves and records the prefix's state if it holds tokens read since the last save (once: a failed
    // save is a notice, and the state stays in memory); then drops what it supersedes, and evicts.
    // onStatus hears when the writing starts (after the budget check), with the state's size.
    Status savePrefix(const LibraryRow& library, Prefix& prefix, QStringList& notices,
                      const std::function<void(const QString&)>& onStatus = {});
    // The chat's sequence; withoutLast: without its last question and answer (regenerate), replayed
    // from the messages since neither the cached sequence nor the saved state ends there.
    Result<std::unique_ptr<Sequence>> chatSequence(const ChatRow& chat, Prefix& prefix, QStringList& notices, bool withoutLast = false);
    // prefixTokens > 0: a delta on the sequence's first prefixTokens tokens (a chat on its library).
    Status saveState(const Sequence& seq, const QString& path, int64_t prefixTokens = 0,
                     const std::function<void(int64_t bytes)>& beforeWriting = {});
    QString dataRoot() const;                              // the folder of the library database
    QString storedPath(const QString& file) const;         // as recorded: relative to dataRoot()
    QString resolvedPath(const QString& stored) const;     // as recorded -> a path to open
    // Keeps the prefix states and every chat delta within the budget: least recently used prefixes
    // first (with their libraries' chat deltas), then the oldest chats' deltas; keepId's prefix and
    // keepChat's delta stay.
    void evictStates(qint64 keepId, qint64 keepChat = 0);
    // Removes the library's saved states of this model that `tokens` (just saved as keepId) extends.
    // (and the library's chat deltas, which were saved on an earlier prefix).
    void dropSupersededStates(qint64 libraryId, qint64 keepId, const std::vector<int32_t>& tokens);
    // Forgets and removes a chat's delta state; returns the bytes freed (0 when it could not be forgotten).
    qint64 dropChatDelta(const ChatRow& chat);

    LibraryDb& db_;
    Engine& engine_;
    SessionOptions options_;
    std::map<qint64, Prefix> prefixes_;                        // library id -> prefix state in memory
    std::map<qint64, std::unique_ptr<Sequence>> chats_;        // chat id -> state after its last answer
};

}  // namespace quire::app
