#pragma once
// The engine side of the server: answers one chat request at a time on the queue's worker thread,
// reusing the session machinery. A `library/<name>` model starts from that library's prefix state
// (SessionService: in memory, or its saved state file, or read once); the messages follow it. Every
// answered request leaves its state in a small cache, so a follow-up whose tokens extend an earlier
// request's computes only what is new.

#include <nlohmann/json.hpp>

#include <QString>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app_context.h"
#include "job_queue.h"
#include "session/session_service.h"

namespace quire::server {

inline const std::string kLibraryModelPrefix = "library/";

class ChatRunner {
public:
    ChatRunner(app::AppContext& context, app::SessionOptions options, size_t cachedStates);
    ~ChatRunner();
    // The model id of the plain model (the model folder's name).
    std::string plainModelId() const;
    // Runs one job, posting started/text/finished or failed.
    void run(Job& job);
    // The engine's counters as last published by the worker (safe from any thread).
    nlohmann::json counters() const;

private:
    struct CachedState {
        std::vector<int32_t> tokens;
        std::unique_ptr<Sequence> seq;
        uint64_t lastUse = 0;
    };
    void answer(Job& job);
    void remember(std::unique_ptr<Sequence> seq);
    const CachedState* longestCachedPrefix(const std::vector<int32_t>& tokens) const;
    void publishCounters();

    app::AppContext& ctx_;
    app::SessionOptions options_;
    std::unique_ptr<app::SessionService> session_;
    std::vector<CachedState> cache_;
    size_t cacheLimit_;
    uint64_t useClock_ = 0;
    mutable std::mutex countersMutex_;
    EngineCounters published_;
};

}  // namespace quire::server
