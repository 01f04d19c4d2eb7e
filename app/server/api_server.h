#pragma once
// `quire serve`'s HTTP side: the routes of the OpenAI-compatible API on cpp-httplib.
//   GET  /health               {"status": "ok" | "loading"} (503 while loading), queue and engine counters
//   GET  /v1/models            the plain model and one model per library (library/<name>)
//   POST /v1/chat/completions  answered by the ChatRunner on the job queue, streamed or not
// The model loads on the engine thread after the port is bound; until it is ready every API route
// answers 503. With an API key every route but /health needs `Authorization: Bearer KEY`.

#include <httplib.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "chat_runner.h"
#include "job_queue.h"

namespace quire::server {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;             // 0: any free port (printed when listening)
    std::string apiKey;          // empty: no key asked (loopback only)
    size_t queueCapacity = 16;   // jobs waiting behind the running one
    size_t maxBodyBytes = 8u << 20;
    std::string requestLog;      // when set, every accepted chat request body is appended here, one per line
};

class ApiServer {
public:
    using Loader = std::function<std::unique_ptr<ChatRunner>(std::string& error)>;
    // load: runs on the engine thread; returns the runner, or nullptr with the reason.
    ApiServer(ServerOptions options, app::AppContext& context, Loader load);
    ~ApiServer();
    // Binds the address and starts loading the model; false with the reason.
    bool bind(std::string& error);
    int port() const { return port_; }
    // Serves until stop() (from any thread) or a failed model load; returns the exit code.
    int run();
    void stop();

private:
    void routes();
    void chat(const httplib::Request& req, httplib::Response& res);
    void models(httplib::Response& res);
    void health(httplib::Response& res);
    static void sendError(httplib::Response& res, const ApiError& e);
    void logRequest(const std::string& body);

    ServerOptions options_;
    app::AppContext& ctx_;
    Loader load_;
    httplib::Server http_;
    std::unique_ptr<ChatRunner> runner_;
    std::unique_ptr<JobQueue> queue_;
    enum class State { loading, ready, failed };
    std::atomic<State> state_{State::loading};
    std::atomic<bool> stopping_{false};
    std::string loadError_;
    int port_ = 0;
    std::mutex logMutex_;
};

}  // namespace quire::server
