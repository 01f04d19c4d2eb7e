#include "engine_worker.h"

#include <QFileInfo>
#include <QLocale>

#include <algorithm>

#include "ingest/add_admission.h"
#include "ingest/library_ingest.h"
#include "library/add_lock.h"
#include "gpu_budget.h"
#include "gpu_info.h"
#include "model_info.h"

namespace quire::ui {

EngineWorker::EngineWorker(QString databasePath, QString stateDir, QString helperProgram)
    : databasePath_(std::move(databasePath)), stateDir_(std::move(stateDir)), helperProgram_(std::move(helperProgram)) {}

EngineWorker::~EngineWorker() = default;

app::LibraryDb* EngineWorker::db() {
    if (!db_) {
        auto db = app::LibraryDb::open(databasePath_);
        if (!db) {
            emit failed(tr("Library"), QString::fromStdString(db.status().message()));
            return nullptr;
        }
        db_ = std::move(db.value());
    }
    return db_.get();
}

app::LibraryDb* EngineWorker::dbForChanges() {
    // A library opened on a full disk is writable again once space was freed (a delete in the window,
    // or by hand): each job that writes tries, rather than waiting for the window to be reopened.
    if (db() && db_->diskFull() && db_->reopenForWriting()) emit reopenedForWriting();
    return db_.get();
}

void EngineWorker::reopenForWriting() { dbForChanges(); }

std::optional<app::LibraryRow> EngineWorker::library(qint64 id) {
    if (!db()) return std::nullopt;
    auto lib = db_->library(id);
    return lib ? lib.value() : std::nullopt;
}

void EngineWorker::loadModel(const QString& dir) {
    session_.reset();
    engine_.reset();
    model_.reset();
    auto model = Model::load(dir.toStdString());
    if (!model) {
        emit modelFailed(QString::fromStdString(model.status().message()));
        return;
    }
    // The GPU when there is one; the CPU engine otherwise (or if the GPU cannot hold the model).
    Result<std::unique_ptr<Engine>> engine = Status(ErrorCode::unsupported, "no GPU");
    gpuBudget_ = 0;
    weightFormat_ = folderWeightFormat(dir);
    if (const GpuInfo gpus = probe_gpus(); gpus.device_count > 0) {
        EngineOptions options;
        if (db()) {
            if (auto g = db_->setting("gpu"); g && !g.value().isEmpty()) options.gpu = std::clamp(g.value().toInt(), 0, gpus.device_count - 1);
            options.gpu_memory_budget_bytes = gpuBudgetSetting(*db_);
        }
        engine = create_engine(model.value(), Backend::cuda, options);
        if (engine) {
            const auto device = static_cast<size_t>(options.gpu);
            gpuBudget_ = options.gpu_memory_budget_bytes > 0 ? options.gpu_memory_budget_bytes
                         : device < gpus.devices.size()      ? gpus.devices[device].total_memory
                                                             : 0;
            gpuBudgetName_ = options.gpu_memory_budget_bytes > 0 ? tr("GPU memory budget set in Settings") : tr("memory of GPU %1").arg(options.gpu);
        }
        if (!engine) emit notice(tr("The GPU cannot run this model (%1); using the CPU engine.").arg(QString::fromStdString(engine.status().message())));
    }
    if (!engine) engine = create_engine(model.value(), Backend::cpu, {});
    if (!engine) {
        emit modelFailed(QString::fromStdString(engine.status().message()));
        return;
    }
    model_ = model.value();
    engine_ = std::move(engine.value());
    if (!db()) return;
    app::SessionOptions o;
    o.stateDir = stateDir_;
    o.chunk = 512;  // progress and cancel every 512 tokens
    session_ = std::make_unique<app::SessionService>(*db_, *engine_, o);
    const ModelConfig& c = model_->config();
    emit modelLoaded(dir, tr("%1 layers, hidden %2, %3 parameters · %4 engine")
                              .arg(c.num_hidden_layers)
                              .arg(c.hidden_size)
                              .arg(QString::fromStdString(with_thousands(c.parameter_count())))
                              .arg(QString(backend_name(engine_->backend())).toUpper()));
}

void EngineWorker::refreshContext(qint64 libraryId) {
    const auto lib = library(libraryId);
    if (!lib || !session_) return;
    const qint64 limit = session_->contextLimit();
    auto ctx = session_->measure(*lib);
    if (!ctx) {
        emit contextReady(libraryId, 0, limit, {}, tr("unknown"), QString::fromStdString(ctx.status().message()));
        return;
    }
    const auto tokens = static_cast<qint64>(ctx->tokens.size());
    QVector<app::ContextPiece> pieces = ctx->pieces;
    std::sort(pieces.begin(), pieces.end(), [](const auto& a, const auto& b) { return a.tokens > b.tokens; });
    QStringList largest;
    for (qsizetype i = 0; i < std::min<qsizetype>(3, pieces.size()); ++i)
        largest << QString("%1 — %2 tokens").arg(QFileInfo(pieces[i].label).fileName()).arg(pieces[i].tokens);
    // Why the library cannot be asked about, if it cannot: too large, or nothing could be read.
    QString problem;
    if (tokens + session_->conversationReserve() > limit)
        problem = tr("The library needs %1 tokens plus %2 for the conversation, more than the context limit of %3. Remove sources to ask about it.")
                      .arg(QLocale().toString(tokens), QLocale().toString(session_->conversationReserve()), QLocale().toString(limit));
    // On the GPU: the memory plan of the library, refused before reading when it does not fit.
    if (problem.isEmpty() && gpuBudget_ > 0 && engine_ && engine_->backend() == Backend::cuda)
        problem = gpuBudgetProblem(model_->config(), weightFormat_, tokens, session_->conversationReserve(), gpuBudget_, gpuBudgetName_);
    if (auto sources = db_->sources(libraryId); sources && !sources->isEmpty()) {
        const bool anyReady = std::any_of(sources->begin(), sources->end(), [](const app::SourceRow& s) { return s.status == "ready"; });
        if (!anyReady) problem = tr("None of this library's sources could be read (see their errors). Add a readable source to ask about it.");
    }
    QString state = tr("not read yet");
    if (auto states = db_->prefixStates(libraryId); states && !states->isEmpty()) {
        const qint64 saved = states->first().tokenCount;
        state = saved == tokens ? tr("ready") : tr("stale: %1 new tokens to read").arg(tokens - saved);
    }
    if (!problem.isEmpty()) state = tr("cannot be read");
    emit contextReady(libraryId, tokens, limit, largest, state, problem);
}

void EngineWorker::addSources(qint64 libraryId, const QStringList& paths, const QString& password) {
    cancel_ = closing_.load();
    if (!dbForChanges()) return;
    auto finish = [&](const QString& problem) {  // problem: why none of the paths was added
        if (!problem.isEmpty())
            for (const QString& path : paths) emit sourceAdded(libraryId, path, QString("error"), problem);
        emit sourcesDone(libraryId);
        refreshContext(libraryId);
    };
    if (db_->readOnly())  // refused before the work, as `quire add` does
        return finish(tr("%1 is %2: Quire can read this library but not change it").arg(db_->path(), db_->readOnlyReason()));
    auto lib = library(libraryId);
    if (!lib) return finish(tr("The library was deleted; nothing was added."));
    // The same lock and context-limit check as `quire add`: an add in the window and one on the command
    // line at once cannot together pass the limit, and a source that does not fit is never stored.
    auto lock = app::AddLock::acquire(QFileInfo(databasePath_).absolutePath(), lib->id, lib->name,
                                      [this](const QString& message) { emit notice(message); }, &cancel_);
    if (!lock) return finish(QString::fromStdString(lock.status().message()));
    lib = library(libraryId);  // deleted, renamed or given another system prompt while this add waited
    if (!lib) return finish(tr("The library was deleted while this add waited; nothing was added."));
    const Tokenizer* tokenizer = session_ && model_ ? model_->tokenizer() : nullptr;
    app::AddAdmission admission(*db_, *lib, tokenizer, session_ ? session_->contextLimit() : 0,
                                session_ ? session_->conversationReserve() : 0);
    app::IngestOptions o;
    o.helperProgram = helperProgram_;
    o.password = password;
    for (const QString& path : paths) {
        const app::AddedSource added =
            app::addSourceToLibrary(*db_, libraryId, path, o, [&](const app::IngestedSource& s) { return admission.admit(s); });
        const app::IngestedSource& s = added.source;
        if (added.stored) admission.stored(added.id, s);
        emit sourceAdded(libraryId, s.path, added.stored ? s.status : QString("error"),
                         added.stored ? s.error : QString::fromStdString(added.stored.message()));
    }
    lock.value().reset();  // released before the library is counted again for the gauge
    finish({});
}

void EngineWorker::progress(const app::ReadProgress& p) {
    position_ = p.position;
    emit readProgress(p.done, p.total, p.tokensPerSecond, p.etaSeconds);
}

QString EngineWorker::stoppedMessage() const {
    return tr("Reading stopped at %1 tokens — the next question continues from there").arg(QLocale().toString(position_));
}

void EngineWorker::readLibrary(qint64 libraryId) {
    cancel_ = closing_.load();
    position_ = 0;
    dbForChanges();
    const auto lib = library(libraryId);
    if (!lib || !session_) {
        emit readFinished(libraryId, false, tr("No model is loaded."));
        return;
    }
    auto r = session_->read(*lib, [this](const app::ReadProgress& p) { progress(p); }, &cancel_);
    if (!r) {
        emit readFinished(libraryId, false,
                          r.status().code() == ErrorCode::cancelled ? stoppedMessage() : QString::fromStdString(r.status().message()));
    } else {
        for (const QString& n : r->notices) emit notice(n);
        emit readFinished(libraryId, true,
                          r->prefilledTokens ? tr("Read %1 tokens.").arg(r->prefilledTokens) : tr("Already read: the saved state is up to date."));
    }
    refreshContext(libraryId);
}

void EngineWorker::ask(qint64 libraryId, const QString& question, qint64 chatId, const AnswerSettings& s) {
    cancel_ = closing_.load();
    position_ = 0;
    dbForChanges();
    const auto lib = library(libraryId);
    auto remote = db() ? app::remoteBackend(*db_) : Result<std::optional<app::RemoteBackendSettings>>(std::nullopt);
    if (!lib || (!session_ && !(remote && remote.value()))) {
        emit failed(tr("Ask"), tr("No model is loaded."));
        return;
    }
    app::AskOptions o;
    o.chatId = chatId;
    o.replaceLast = s.replaceLast && chatId != 0;
    o.thinking = s.thinking;
    o.generation.max_tokens = s.maxTokens;
    o.generation.sampling.temperature = static_cast<float>(s.temperature);
    o.generation.sampling.top_p = static_cast<float>(s.topP);
    o.cancel = &cancel_;
    o.onProgress = [this](const app::ReadProgress& p) { progress(p); };
    o.onStatus = [this](const QString& what) { emit notice(what.left(1).toUpper() + what.mid(1) + "…"); };
    bool started = false;
    o.onText = [&](const QString& d) {
        if (!started) {
            started = true;
            emit answerStarted(chatId);
        }
        emit answerDelta(d);
    };
    if (remote && remote.value()) return askRemote(*lib, question, *remote.value(), o);
    auto r = session_->ask(*lib, question, o);
    if (!r && r.status().code() == ErrorCode::cancelled) {  // stopped while reading: no answer, no dialog
        emit answerStopped(libraryId, stoppedMessage());
        refreshContext(libraryId);
        return;
    }
    if (!r) {
        emit failed(tr("Ask"), QString::fromStdString(r.status().message()));
        return;
    }
    for (const QString& n : r->notices) emit notice(n);
    emit answerFinished(r->chatId, r->answer, r->firstTokenSeconds, r->tokensPerSecond, r->stopReason, r->prefilledTokens);
    refreshContext(libraryId);
}

// The same question through the configured OpenAI-compatible server (Settings → Model server, or
// `quire config backend`); the chat gets the turn only when the whole answer has arrived.
void EngineWorker::askRemote(const app::LibraryRow& lib, const QString& question, const app::RemoteBackendSettings& backend,
                             const app::AskOptions& o) {
    auto endpoint = app::remoteEndpoint(backend);
    if (!endpoint) {
        emit failed(tr("Ask"), QString::fromStdString(endpoint.status().message()));
        return;
    }
    auto r = app::askRemote(*db_, endpoint.value(), lib, question, o, nullptr);
    if (!r) {
        if (r.status().code() != ErrorCode::cancelled)
            emit failed(tr("Ask"), QString::fromStdString(r.status().message()) + "\n" + tr("The chat is unchanged."));
        return;
    }
    emit answerFinished(r->chatId, r->answer, r->firstTokenSeconds, 0, r->stopReason, r->promptTokens - r->cachedTokens);
    refreshContext(lib.id);
}

}  // namespace quire::ui
