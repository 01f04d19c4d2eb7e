#include "session_service.h"

#include <QCryptographicHash>
#include <QDir>
#include <QScopeGuard>
#include <QSet>
#include <QFile>
#include <QFileInfo>

#include <algorithm>
#include <chrono>
#include <limits>
#include <cstring>

#include "hash.h"
#include "library/state_files.h"
#include "process_alive.h"
#include "read_eta.h"
#include "session/source_token_cache.h"
#include "state_file.h"

namespace quire::app {

namespace {

QString tokensHash(const std::vector<int32_t>& tokens, size_t count) {
    const std::vector<int32_t> head(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(count));
    return QString::fromStdString(hash_hex(hash_tokens(head)));
}

QByteArray toBlob(const std::vector<int32_t>& t) {
    return QByteArray(reinterpret_cast<const char*>(t.data()), static_cast<qsizetype>(t.size() * 4));
}

std::vector<int32_t> fromBlob(const QByteArray& b) {
    std::vector<int32_t> t(static_cast<size_t>(b.size()) / 4);
    std::memcpy(t.data(), b.constData(), t.size() * 4);
    return t;
}

bool startsWith(const std::vector<int32_t>& all, const std::vector<int32_t>& head) {
    return head.size() <= all.size() && std::equal(head.begin(), head.end(), all.begin());
}

// Prefill with progress reporting in tokens/s and an ETA from the cost model (read_eta.h).
Status prefillWithProgress(Engine& engine, Sequence& seq, std::span<const int32_t> tokens, int64_t chunk,
                           const std::function<void(const ReadProgress&)>& onProgress, const std::atomic<bool>* cancel,
                           ReadEta* eta = nullptr) {
    PrefillRequest req;
    req.tokens = tokens;
    req.chunk = chunk;
    req.cancel = cancel;
    const qint64 start = seq.length();
    if (onProgress)
        req.on_progress = [&](const PrefillProgress& p) {
            ReadProgress r;
            r.done = p.done;
            r.total = p.total;
            r.position = start + p.done;
            r.tokensPerSecond = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0;
            if (eta) {
                eta->add(start + p.done, p.seconds);
                r.etaSeconds = std::max(0.0, eta->remainingSeconds());
            } else {
                r.etaSeconds = r.tokensPerSecond > 0 ? static_cast<double>(p.total - p.done) / r.tokensPerSecond : 0;
            }
            onProgress(r);
        };
    return engine.prefill(seq, req, nullptr);
}

}  // namespace

SessionService::SessionService(LibraryDb& db, Engine& engine, SessionOptions options)
    : db_(db), engine_(engine), options_(std::move(options)) {
    options_.stateDir = QDir(options_.stateDir).absolutePath();
    QDir().mkpath(options_.stateDir);
    removeStaleTemporaryFiles(options_.stateDir);
}

void removeStaleTemporaryFiles(const QString& stateDir) {
    // A save killed before its rename leaves NAME.qstate.tmp.PID behind (engine/file_util.cpp). One
    // whose process is gone can never complete; one whose process lives is a save in progress,
    // unless the PID now belongs to another program (process_alive.h).
    const QStringList names = QDir(stateDir).entryList({"*.qstate.tmp.*"}, QDir::Files | QDir::Hidden);
    for (const QString& name : names) {
        const QString pid = name.section('.', -1);
        bool isPid = false;
        if (pid.toLongLong(&isPid) <= 0 || !isPid) continue;
        if (!same_program_alive(pid.toStdString())) QFile::remove(QDir(stateDir).filePath(name));
    }
}

QString SessionService::dataRoot() const { return QFileInfo(db_.path()).absolutePath(); }

bool SessionService::coversPrefix(const PrefixStateRow& r, const std::vector<int32_t>& tokens) {
    return r.tokenCount <= static_cast<qint64>(tokens.size()) && tokensHash(tokens, static_cast<size_t>(r.tokenCount)) == r.tokenHash;
}

Result<std::optional<PrefixStateRow>> SessionService::usableState(const LibraryRow& library, const std::vector<int32_t>& tokens) {
    auto rows = db_.prefixStates(library.id);  // longest first
    if (!rows) return rows.status();
    // A file deleted, replaced or grown since it was recorded would be refused on loading (and the
    // library read again): it is not named as usable. Its contents are checked only then.
    auto intact = [&](const PrefixStateRow& r) {
        const QFileInfo f(resolvedPath(r.path));
        return f.isFile() && f.size() == r.bytes;
    };
    for (const PrefixStateRow& r : rows.value())
        if (r.modelFingerprint == fingerprint() && coversPrefix(r, tokens) && intact(r)) return std::optional<PrefixStateRow>(r);
    return std::optional<PrefixStateRow>();
}

QString SessionService::storedPath(const QString& file) const {
    // Recorded relative to the data folder, so the library works from any working directory and
    // when the data folder is moved.
    const QString rel = QDir(dataRoot()).relativeFilePath(QFileInfo(file).absoluteFilePath());
    return rel.startsWith("../") ? QFileInfo(file).absoluteFilePath() : rel;
}

QString SessionService::resolvedPath(const QString& stored) const { return QDir(dataRoot()).filePath(stored); }

QString SessionService::fingerprint() const {
    return QString::fromStdString(hash_hex(engine_.model().fingerprint())) + "-" +
           precision_name(engine_.options().precision) + "-" + regime_rule_name(engine_.options().regime);
}

Result<AssembledContext> SessionService::assemble(const LibraryRow& library) { return assembleWithin(library, true); }
Result<AssembledContext> SessionService::measure(const LibraryRow& library) { return assembleWithin(library, false); }

Result<AssembledContext> SessionService::assembleWithin(const LibraryRow& library, bool enforceLimits) {
    const Tokenizer* tok = engine_.model().tokenizer();
    if (!tok) return Status(ErrorCode::invalid_tokenizer, "the model has no tokenizer");
    auto sources = db_.sources(library.id);
    if (!sources) return sources.status();
    QVector<ContextSource> parts;
    for (const SourceRow& s : sources.value()) {
        if (s.status != "ready") continue;
        auto text = db_.sourceText(s.id);
        if (!text) return text.status();
        parts.append({s.id, s.path, text.value()});
    }
    // Answering from the system prompt alone would look like an answer about the library.
    if (enforceLimits && parts.isEmpty() && !sources->isEmpty())
        return Status(ErrorCode::invalid_argument,
                      QString("none of the %1 sources of library '%2' could be read (see their errors); there is nothing to answer from")
                          .arg(sources->size()).arg(library.name).toStdString());
    const QString systemPrompt = library.systemPrompt.isEmpty() ? defaultSystemPrompt() : library.systemPrompt;
    const qint64 limit = enforceLimits ? options_.contextLimit : std::numeric_limits<qint64>::max() / 2;
    const qint64 reserve = enforceLimits ? options_.conversationReserve : 0;
    // Hashing the texts takes milliseconds; tokenizing a 1M-token library takes seconds.
    QCryptographicHash hash(QCryptographicHash::Sha256);
    auto field = [&](const QByteArray& bytes) {
        const qint64 n = bytes.size();
        hash.addData(QByteArrayView(reinterpret_cast<const char*>(&n), sizeof n));
        hash.addData(bytes);
    };
    field(systemPrompt.toUtf8());
    field(QByteArray::number(limit) + ' ' + QByteArray::number(reserve));
    for (const ContextSource& p : parts) {
        field(QByteArray::number(p.id));
        field(p.path.toUtf8());
        field(p.text.toUtf8());
    }
    const QByteArray key = hash.result();
    Assembled& cached = assembled_[{library.id, enforceLimits}];
    if (!cached.key.isEmpty() && cached.key == key) return cached.context;
    ++tokenizations_;
    DbSourceTokenCache cache(db_, *tok);  // ids of sources encoded before, by any process
    auto ctx = assembleContext(*tok, systemPrompt, parts, limit, reserve, &cache);
    sourcesEncoded_ += cache.misses();
    if (!ctx) return ctx.status();
    cached = {key, ctx.value()};
    // Token counts are a convenience for listings: a read-only library goes without, and a failure to
    // store them (a full disk) must not stop a question.
    if (!db_.readOnly())
        for (const ContextPiece& p : ctx->pieces)
            if (p.sourceId) (void)db_.setSourceTokens(p.sourceId, p.tokens);
    return ctx;
}

Status SessionService::saveState(const Sequence& seq, const QString& path, int64_t prefixTokens,
                                 const std::function<void(int64_t bytes)>& beforeWriting) {
    // A state larger than the whole budget is not written at all: writing it would break the budget
    // the user set (eviction keeps the newest state), and 9 GB written to be deleted costs a minute.
    const int64_t bytes = engine_.state_file_bytes(seq, prefixTokens);
    if (bytes > options_.stateBudgetBytes)
        return Status(ErrorCode::out_of_range, QString("the state (%1 MB) is larger than the state budget (%2 MB)")
                                                   .arg(static_cast<double>(bytes) / (1 << 20), 0, 'f', bytes < (10 << 20) ? 2 : 0)
                                                   .arg(options_.stateBudgetBytes >> 20)
                                                   .toStdString());
    if (beforeWriting) beforeWriting(bytes);
    return engine_.save_state(seq, path.toStdString(), prefixTokens);
}

void SessionService::evictStates(qint64 keepId, qint64 keepChat) {
    // The budget covers the library prefixes and every chat's delta state (also those of a library
    // whose prefix was not saved: another process reads the library again and the delta fits it).
    // A chat's delta needs the prefix it was saved on: when a library's prefix state goes, its chats'
    // deltas go with it (the chats then replay their own tokens), except the chat just saved.
    auto rows = db_.allPrefixStates();  // least recently used first
    auto libraries = db_.libraries();
    if (!rows || !libraries) return;
    QList<ChatRow> chats;  // every chat with a delta, oldest first
    for (const LibraryRow& l : libraries.value())
        if (auto cs = db_.chats(l.id))
            for (const ChatRow& c : cs.value())
                if (!c.statePath.isEmpty()) chats << c;
    std::sort(chats.begin(), chats.end(), [](const ChatRow& a, const ChatRow& b) { return a.id < b.id; });
    qint64 total = 0;
    for (const auto& r : rows.value()) total += r.bytes;
    for (const ChatRow& c : chats) total += QFileInfo(resolvedPath(c.statePath)).size();
    auto dropChat = [&](ChatRow& c) {
        total -= dropChatDelta(c);
        c.statePath.clear();
    };
    for (const auto& r : rows.value()) {
        if (total <= options_.stateBudgetBytes) break;
        if (r.id == keepId) continue;
        QFile::remove(resolvedPath(r.path));
        if (!db_.deletePrefixState(r.id)) continue;
        total -= r.bytes;
        for (ChatRow& c : chats)
            if (c.libraryId == r.libraryId && c.id != keepChat && !c.statePath.isEmpty()) dropChat(c);
    }
    // Still over: the other chats' deltas, oldest chat first; never the chat just saved.
    for (ChatRow& c : chats) {
        if (total <= options_.stateBudgetBytes) break;
        if (c.id != keepChat && !c.statePath.isEmpty()) dropChat(c);
    }
}

void SessionService::dropSupersededStates(qint64 libraryId, qint64 keepId, const std::vector<int32_t>& tokens) {
    // A state of this model that the new one extends is the library before its latest sources: of use
    // again only if exactly those are removed, and ~8 GB at 1M tokens. Kept until the budget ran out,
    // each add-then-ask at 1M left another such file behind.
    auto rows = db_.prefixStates(libraryId);
    if (!rows) return;
    bool dropped = false;
    for (const PrefixStateRow& r : rows.value())
        if (r.id != keepId && r.modelFingerprint == fingerprint() && r.tokenCount < static_cast<qint64>(tokens.size()) &&
            coversPrefix(r, tokens) && db_.deletePrefixState(r.id)) {
            QFile::remove(resolvedPath(r.path));
            dropped = true;
        }
    // The chats' deltas were saved on an earlier prefix: they cannot continue this one (a follow-up
    // replays its chat), so they go with it, as evictStates does, instead of using the budget.
    if (dropped)
        if (auto chats = db_.chats(libraryId))
            for (const ChatRow& c : chats.value())
                if (!c.statePath.isEmpty()) dropChatDelta(c);
}

qint64 SessionService::dropChatDelta(const ChatRow& chat) {
    const QString file = resolvedPath(chat.statePath);
    const qint64 bytes = QFileInfo(file).size();
    if (!db_.setChatState(chat.id, QString(), 0)) return 0;  // the row first: never a row naming a removed file
    QFile::remove(file);
    return bytes;
}

Result<SessionService::Prefix*> SessionService::ensurePrefix(const LibraryRow& library,
                                                             const std::function<void(const ReadProgress&)>& onProgress,
                                                             const std::atomic<bool>* cancel, ReadResult& info, bool deferSave) {
    auto ctx = assemble(library);
    if (!ctx) return ctx.status();
    const std::vector<int32_t>& tokens = ctx->tokens;
    info.contextTokens = static_cast<qint64>(tokens.size());
    Prefix& prefix = prefixes_[library.id];
    // 1. The prefix in memory, if it is still a prefix of the library's tokens.
    if (!(prefix.seq && startsWith(tokens, prefix.tokens))) {
        prefix.seq.reset();
        prefix.tokens.clear();
        prefix.stateId = -1;
        prefix.unsaved = false;
        // 2. The longest saved state that matches this model and a prefix of the tokens. A file that
        // vanished while this looked (another process saved a longer state and dropped this one,
        // dropSupersededStates) sends the search round once more, to find that longer state.
        for (int round = 0; round < 2 && !prefix.seq; ++round) {
            auto vanished = loadSavedPrefix(library, tokens, prefix, info, round == 0);
            if (!vanished) return vanished.status();
            if (!vanished.value()) break;
        }
        if (!prefix.seq) prefix.seq = engine_.new_sequence();
    } else {
        info.reusedState = true;
    }
    // 3. Read what is missing, then save the new prefix state.
    const auto have = static_cast<size_t>(prefix.seq->length());
    if (have < tokens.size()) {
        const std::span<const int32_t> rest(tokens.data() + have, tokens.size() - have);
        // The cost of reading, measured once per model and backend, makes the ETA (read_eta.h).
        const QString costKey = "read_cost:" + QString(backend_name(engine_.backend())) + ":" + fingerprint();
        auto stored = db_.setting(costKey);
        ReadEta eta(static_cast<qint64>(have), static_cast<qint64>(tokens.size()),
                    stored ? ReadCostModel::fromString(stored.value()) : ReadCostModel{});
        const Status st = prefillWithProgress(engine_, *prefix.seq, rest, options_.chunk, onProgress, cancel, &eta);
        prefix.tokens.assign(prefix.seq->tokens().begin(), prefix.seq->tokens().end());
        if (!st) return st;  // on cancel the in-memory prefix keeps what was read
        if (static_cast<qint64>(rest.size()) >= options_.readCostMinTokens && eta.measured().valid())
            (void)db_.setSetting(costKey, eta.measured().toString());  // only an estimate: a failure to store it changes nothing
        info.prefilledTokens = static_cast<qint64>(rest.size());
        prefix.unsaved = true;
    }
    prefix.tokens = tokens;
    if (prefix.unsaved && !deferSave) QUIRE_TRY(savePrefix(library, prefix, info.notices));
    return &prefix;
}

Result<bool> SessionService::loadSavedPrefix(const LibraryRow& library, const std::vector<int32_t>& tokens, Prefix& prefix,
                                             ReadResult& info, bool firstLook) {
    auto rows = db_.prefixStates(library.id);  // longest first
    if (!rows) return rows.status();
    bool vanished = false;
    for (const PrefixStateRow& r : rows.value()) {
        if (r.modelFingerprint != fingerprint()) {
            if (firstLook)
                info.notices << QString("ignoring a saved state made with another model or settings (%1)").arg(QFileInfo(r.path).fileName());
            continue;
        }
        if (!coversPrefix(r, tokens)) continue;  // the library changed before this point: the state is of no use
        const std::vector<int32_t> head(tokens.begin(), tokens.begin() + r.tokenCount);
        auto loaded = engine_.load_state(resolvedPath(r.path).toStdString(), &head);
        if (!loaded && firstLook && !QFile::exists(resolvedPath(r.path))) {
            vanished = true;
            continue;
        }
        if (!loaded) {
            info.notices << QString("saved state %1 is unusable (%2); reading the library again")
                                .arg(QFileInfo(r.path).fileName(), QString::fromStdString(loaded.status().message()));
            QFile::remove(resolvedPath(r.path));
            QUIRE_TRY(db_.deletePrefixState(r.id));
            continue;
        }
        QUIRE_TRY(db_.touchPrefixState(r.id));
        prefix.seq = std::move(loaded.value());
        prefix.tokens = head;
        prefix.stateId = r.id;
        info.reusedState = true;
        return false;
    }
    return vanished;
}

Status SessionService::savePrefix(const LibraryRow& library, Prefix& prefix, QStringList& notices,
                                  const std::function<void(const QString&)>& onStatus) {
    if (!prefix.unsaved) return Status::ok();
    prefix.unsaved = false;  // one attempt: a failed save is said once and the state stays in memory
    const std::vector<int32_t>& tokens = prefix.tokens;
    const QString hash = tokensHash(tokens, tokens.size());
    const QString path = QDir(options_.stateDir).filePath(libraryStateFile(library.id, hash));
    // A failed save (a full disk) costs only the reuse: the state stays in memory for this
    // process, the answer goes on, and the next process reads the library again.
    auto sayWriting = [&](int64_t bytes) {
        if (!onStatus) return;
        const auto b = static_cast<double>(bytes);
        onStatus(QString("saving the library's state (%1) for the next questions")
                     .arg(b >= 1e9 ? QString("%1 GB").arg(b / 1e9, 0, 'f', 2) : QString("%1 MB").arg(b / 1e6, 0, 'f', 1)));
    };
    if (Status saved = saveState(*prefix.seq, path, 0, sayWriting); !saved) {
        notices << "could not save the library's state (" + QString::fromStdString(saved.message()) +
                       "); the next question in another process will read the library again";
        // A budget lowered below what is saved already is honoured too (the state in use is in memory).
        if (saved.code() == ErrorCode::out_of_range) evictStates(-1);
        return Status::ok();
    }
    PrefixStateRow row;
    row.libraryId = library.id;
    row.path = storedPath(path);
    row.modelFingerprint = fingerprint();
    row.tokenHash = hash;
    row.tokenCount = static_cast<qint64>(tokens.size());
    row.bytes = QFileInfo(path).size();
    auto id = db_.addPrefixState(row);
    if (!id) {
        // The library was deleted meanwhile: no row will ever point at the file, so it goes
        // now. On any other failure it stays (another process may have recorded the same file).
        if (auto still = db_.library(library.id); still && !still.value()) {
            QFile::remove(path);
            return Status(ErrorCode::invalid_argument,
                          ("library '" + library.name + "' was deleted while it was being read; nothing was saved").toStdString());
        }
        return id.status();
    }
    prefix.stateId = id.value();
    dropSupersededStates(library.id, id.value(), tokens);
    evictStates(id.value());
    return Status::ok();
}

Result<ReadResult> SessionService::read(const LibraryRow& library, const std::function<void(const ReadProgress&)>& onProgress,
                                        const std::atomic<bool>* cancel) {
    ReadResult info;
    auto p = ensurePrefix(library, onProgress, cancel, info);
    if (!p) return p.status();
    return info;
}

Result<const Sequence*> SessionService::prefixState(const LibraryRow& library,
                                                   const std::function<void(const ReadProgress&)>& onProgress,
                                                   const std::atomic<bool>* cancel, ReadResult& info) {
    auto p = ensurePrefix(library, onProgress, cancel, info);
    if (!p) return p.status();
    return static_cast<const Sequence*>(p.value()->seq.get());
}

Result<std::unique_ptr<Sequence>> SessionService::chatSequence(const ChatRow& chat, Prefix& prefix, QStringList& notices, bool withoutLast) {
    auto messages = db_.messages(chat.id);
    if (!messages) return messages.status();
    QList<MessageRow> kept = messages.value();
    if (withoutLast) {
        if (kept.size() < 2 || kept.last().role != "assistant" || kept[kept.size() - 2].role != "user")
            return Status(ErrorCode::invalid_argument, QString("chat %1 has no answer to regenerate").arg(chat.id).toStdString());
        kept.resize(kept.size() - 2);
    }
    std::vector<int32_t> expected = prefix.tokens;
    for (const MessageRow& m : kept) {
        const auto t = fromBlob(m.tokens);
        expected.insert(expected.end(), t.begin(), t.end());
    }
    if (auto it = chats_.find(chat.id); it != chats_.end() && it->second->tokens() == expected) return it->second->fork();
    if (const QString statePath = resolvedPath(chat.statePath); !withoutLast && !chat.statePath.isEmpty() && QFile::exists(statePath)) {
        // A delta on the library's prefix (or, from older versions, a whole state).
        auto loaded = engine_.load_state(statePath.toStdString(), &expected, prefix.seq.get());
        if (loaded) return std::move(loaded.value());
        // A save that did not finish (killed, a full disk) leaves the state of an earlier turn, with
        // the token count the database recorded for it: that point, then only the turns after it.
        const auto earlier = static_cast<size_t>(std::max<qint64>(0, chat.stateTokens));
        if (earlier > prefix.tokens.size() && earlier < expected.size()) {
            const std::vector<int32_t> head(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(earlier));
            if (auto older = engine_.load_state(statePath.toStdString(), &head, prefix.seq.get()); older) {
                const std::span<const int32_t> rest(expected.data() + earlier, expected.size() - earlier);
                QUIRE_TRY(prefillWithProgress(engine_, *older.value(), rest, options_.chunk, {}, nullptr));
                return std::move(older.value());
            }
        }
        notices << QString("the saved state of chat %1 does not fit the library and conversation as they are now (%2); replaying the conversation")
                       .arg(chat.id).arg(QString::fromStdString(loaded.status().message()));
    }
    auto seq = prefix.seq->fork();
    if (!seq) return Status(ErrorCode::out_of_memory, "no memory left to continue this chat");
    const std::span<const int32_t> history(expected.data() + prefix.tokens.size(), expected.size() - prefix.tokens.size());
    if (!history.empty()) QUIRE_TRY(prefillWithProgress(engine_, *seq, history, options_.chunk, {}, nullptr));
    return seq;
}

Result<AskResult> SessionService::ask(const LibraryRow& library, const QString& question, const AskOptions& o) {
    if (question.trimmed().isEmpty()) return Status(ErrorCode::invalid_argument, "the question is empty");
    const auto askStart = std::chrono::steady_clock::now();
    if (db_.readOnly())  // refused before the work: the answer could not be recorded
        return Status(ErrorCode::io_error, (db_.path() + " is " + db_.readOnlyReason() + ": a question and its answer cannot be recorded").toStdString());
    // The chat of this library, asked for before the library is read (a mistyped chat must not cost
    // the reading) and again after (it may have been deleted meanwhile).
    auto libraryChat = [&]() -> Result<ChatRow> {
        auto chat = db_.chat(o.chatId);
        if (!chat) return chat.status();
        if (!chat.value() || chat.value()->libraryId != library.id)
            return Status(ErrorCode::invalid_argument, QString("library '%1' has no chat %2").arg(library.name).arg(o.chatId).toStdString());
        return *chat.value();
    };
    if (o.chatId)
        if (auto chat = libraryChat(); !chat) return chat.status();
    const EngineCounters before = engine_.counters();
    AskResult result;
    ReadResult info;
    auto prefixOr = ensurePrefix(library, o.onProgress, o.cancel, info, /*deferSave=*/true);
    if (!prefixOr) return prefixOr.status();
    Prefix& prefix = *prefixOr.value();
    // The library's new state is saved after the answer, not before its first word: at 1M tokens it is
    // 8.5 GB, ~8 s of writing (H200 machine) that the first answer byte used to wait for. Every way out
    // of this function saves it; a failed save is only a notice (the next process reads again).
    auto savePrefixOnExit = qScopeGuard([&] {
        QStringList unseen;
        (void)savePrefix(library, prefix, unseen);
    });
    result.contextTokens = info.contextTokens;
    result.reusedState = info.reusedState;
    result.notices = info.notices;

    std::unique_ptr<Sequence> seq;
    const qint64 chatId = o.chatId;
    qint64 afterMessage = -1;  // the chat's last message when this answer began (recordExchange)
    if (chatId) {
        auto chat = libraryChat();
        if (!chat) return chat.status();
        auto last = db_.lastMessageId(chatId);
        if (!last) return last.status();
        afterMessage = last.value();
        auto s = chatSequence(chat.value(), prefix, result.notices, o.replaceLast);
        if (!s) return s.status();
        seq = std::move(s.value());
    } else if (o.replaceLast) {
        return Status(ErrorCode::invalid_argument, "regenerating an answer needs the chat it is in");
    } else {
        // The chat is recorded only with its first question and answer (recordExchange), so that an
        // ask killed or cut short leaves no empty chat behind.
        seq = prefix.seq->fork();
        if (!seq) return Status(ErrorCode::out_of_memory, "no memory left to start a chat from the library's state");
    }

    const std::vector<int32_t> q = questionTokens(*engine_.model().tokenizer(), question, o.thinking);
    result.questionTokens = static_cast<qint64>(q.size());
    // The question counts against the context limit like everything else in the context.
    const qint64 room = options_.contextLimit - seq->length();
    if (result.questionTokens >= room)
        return Status(ErrorCode::out_of_range, QString("the question (%1 tokens) does not fit: the context already holds %2 of the "
                                                       "%3-token limit, leaving %4 (with at least one for the answer)")
                                                   .arg(result.questionTokens).arg(seq->length()).arg(options_.contextLimit).arg(room)
                                                   .toStdString());
    GenerateOptions g = o.generation;
    g.max_tokens = std::min<int64_t>(g.max_tokens, room - result.questionTokens);
    g.cancel = o.cancel;
    g.prefill_chunk = options_.chunk;
    if (o.onText) g.on_text = [&](const std::string& d) { o.onText(QString::fromStdString(d)); };
    result.secondsBeforeAnswer = std::chrono::duration<double>(std::chrono::steady_clock::now() - askStart).count();
    auto r = generate(engine_, *seq, q, g);
    if (!r) return r.status();
    result.answer = QString::fromStdString(r->text);
    result.stopReason = QString::fromStdString(r->stop_reason);
    result.firstTokenSeconds = r->first_token_seconds;
    result.tokensPerSecond = r->tokens_per_second;
    result.prefilledTokens = engine_.counters().prefilled_tokens - before.prefilled_tokens;

    MessageRow user;
    user.role = "user";
    user.content = question;
    user.tokens = toBlob(q);
    MessageRow answer;
    answer.role = "assistant";
    answer.content = result.answer;
    answer.tokens = toBlob(r->tokens);
    answer.firstTokenSeconds = r->first_token_seconds;
    answer.tokensPerSecond = r->tokens_per_second;
    answer.stopped = r->stop_reason == "cancelled";
    // The answer exists only in this process until it is recorded: a failure says it was not saved.
    auto notSaved = [](const Status& st) {
        return Status(st.code(), "the answer was not saved: " + st.message());
    };
    if (o.replaceLast) {
        if (Status st = db_.replaceLastExchange(chatId, user, answer, afterMessage); !st) return notSaved(st);
        result.chatId = chatId;
    } else {
        auto recorded = db_.recordExchange(chatId, library.id, question.left(80), user, answer, afterMessage);
        if (!recorded) return notSaved(recorded.status());
        result.chatId = recorded.value();
    }

    if (Status st = savePrefix(library, prefix, result.notices, o.onStatus); !st)
        result.notices << "could not record the library's state: " + QString::fromStdString(st.message());
    // The chat's state only saves recomputing it: without it (a full disk) the chat replays its tokens.
    // It is a delta on the library's prefix (the chat's own rows and the Lightning states, a few MB),
    // never a second copy of the prefix; the prefix's own file is never rewritten by a chat.
    const QString statePath = QDir(options_.stateDir).filePath(chatStateFile(result.chatId));
    if (Status st = saveState(*seq, statePath, static_cast<int64_t>(prefix.tokens.size())); st) {
        QUIRE_TRY(db_.setChatState(result.chatId, storedPath(statePath), seq->length()));
        evictStates(prefix.stateId, result.chatId);  // chat states count against the state budget too
    } else {
        result.notices << "could not save the chat state: " + QString::fromStdString(st.message());
    }
    chats_[result.chatId] = std::move(seq);
    return result;
}

}  // namespace quire::app
