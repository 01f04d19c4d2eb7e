#pragma once
// EngineWorker: everything slow — loading the model, ingesting sources, reading a library, answering
// — runs here, on a worker thread, so the window never waits. Requests arrive as queued calls;
// results leave as signals. requestCancel() is safe from any thread and stops within one chunk.

#include <QObject>
#include <QString>
#include <QStringList>

#include <atomic>
#include <memory>

#include "engine.h"
#include "library/library_db.h"
#include "remote/remote_backend.h"
#include "gpu_memory_plan.h"
#include "session/session_service.h"

namespace quire::ui {

struct AnswerSettings {
    bool thinking = false;
    double temperature = 0.0;
    double topP = 1.0;
    int maxTokens = 512;
    bool replaceLast = false;  // regenerate: replace the chat's last answer in place
};

class EngineWorker : public QObject {
    Q_OBJECT
public:
    EngineWorker(QString databasePath, QString stateDir, QString helperProgram);
    ~EngineWorker() override;
    void requestCancel() { cancel_ = true; }
    // The window closes: the job running stops as Stop does, and every job still queued stops at once.
    void requestShutdown() {
        closing_ = true;
        cancel_ = true;
    }

    // Called through QMetaObject::invokeMethod on the worker thread.
    void loadModel(const QString& dir);
    // The window's own connection was opened for writing again (space freed on a full disk): this
    // object's connection, opened read-only too, follows, or it would keep reading a stale file.
    void reopenForWriting();
    void refreshContext(qint64 libraryId);
    void addSources(qint64 libraryId, const QStringList& paths, const QString& password);
    void readLibrary(qint64 libraryId);
    void ask(qint64 libraryId, const QString& question, qint64 chatId, const AnswerSettings& settings);

signals:
    void modelLoaded(const QString& dir, const QString& description);
    void modelFailed(const QString& reason);
    // problem: why the library cannot be asked about now (too large, nothing readable); empty if it can.
    void contextReady(qint64 libraryId, qint64 tokens, qint64 limit, const QStringList& largest, const QString& state,
                      const QString& problem);
    void sourceAdded(qint64 libraryId, const QString& path, const QString& status, const QString& error);
    void sourcesDone(qint64 libraryId);
    void readProgress(qint64 done, qint64 total, double tokensPerSecond, double etaSeconds);
    void readFinished(qint64 libraryId, bool ok, const QString& message);
    void answerStarted(qint64 chatId);
    void answerDelta(const QString& text);
    void answerFinished(qint64 chatId, const QString& answer, double firstTokenSeconds, double tokensPerSecond,
                        const QString& stopReason, qint64 computedTokens);
    void answerStopped(qint64 libraryId, const QString& message);  // stopped before the first token
    void notice(const QString& text);
    void reopenedForWriting();  // this worker's library was on a full disk and is writable again
    void failed(const QString& what, const QString& reason);

private:
    app::LibraryDb* db();
    app::LibraryDb* dbForChanges();  // db(), opened for writing again if it was on a full disk and space was freed
    void progress(const app::ReadProgress& p);
    QString stoppedMessage() const;
    std::optional<app::LibraryRow> library(qint64 id);
    void askRemote(const app::LibraryRow& lib, const QString& question, const app::RemoteBackendSettings& backend, const app::AskOptions& o);

    QString databasePath_, stateDir_, helperProgram_;
    std::unique_ptr<app::LibraryDb> db_;
    std::shared_ptr<const Model> model_;
    std::unique_ptr<Engine> engine_;
    std::unique_ptr<app::SessionService> session_;
    WeightFormat weightFormat_;  // the model folder's precision, for the GPU memory plan
    qint64 gpuBudget_ = 0;       // the budget the engine was created with, or the GPU's memory; 0 on the CPU engine
    QString gpuBudgetName_;
    std::atomic<bool> cancel_{false};
    std::atomic<bool> closing_{false};
    qint64 position_ = 0;  // context tokens read, as last reported
};

}  // namespace quire::ui
