#include "api_server.h"

#include <cstdio>
#include <fstream>

#include "client_connection.h"
#include "completion_json.h"

namespace quire::server {

using nlohmann::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);

// Compares without stopping at the first difference, so the time taken does not reveal the key.
bool sameKey(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

void sendJson(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(jsonText(body), "application/json");
}

}  // namespace

ApiServer::ApiServer(ServerOptions options, app::AppContext& context, Loader load)
    : options_(std::move(options)), ctx_(context), load_(std::move(load)) {
    // Every waiting client holds an HTTP thread: room for the queue, the running job and a few more
    // (health checks, refusals).
    const size_t threads = options_.queueCapacity + 8;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http_.set_payload_max_length(options_.maxBodyBytes);
    // httplib's default adds SO_REUSEPORT, which lets a second server bind the same port and silently
    // take half the connections; SO_REUSEADDR alone allows a quick restart but not two listeners.
    http_.set_socket_options([](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    routes();
}

ApiServer::~ApiServer() { stop(); }

void ApiServer::sendError(httplib::Response& res, const ApiError& e) { sendJson(res, e.status, e.body()); }

bool ApiServer::bind(std::string& error) {
    if (options_.port == 0) port_ = http_.bind_to_any_port(options_.host);
    else port_ = http_.bind_to_port(options_.host, options_.port) ? options_.port : -1;
    if (port_ <= 0) {
        error = "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + " (in use, or not an address of this machine)";
        return false;
    }
    queue_ = std::make_unique<JobQueue>(
        options_.queueCapacity,
        [this] {
            std::string loadError;
            runner_ = load_(loadError);
            if (!runner_) {
                loadError_ = loadError;
                state_ = State::failed;
                http_.stop();
                return;
            }
            state_ = State::ready;
            std::fprintf(stderr, "serve: model ready\n");
        },
        [this](Job& job) { runner_->run(job); });
    return true;
}

int ApiServer::run() {
    http_.listen_after_bind();
    queue_->stop();
    if (state_ == State::failed) {
        std::fprintf(stderr, "quire: %s\n", loadError_.c_str());
        return 1;
    }
    return 0;
}

// Handlers waiting on jobs see stopping_ and answer 503, so httplib can join its threads.
void ApiServer::stop() {
    stopping_ = true;
    if (queue_) queue_->shutdown();
    http_.stop();
}
void ApiServer::routes() {
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (options_.apiKey.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
        const std::string auth = req.get_header_value("Authorization");
        const std::string bearer = "Bearer ";
        if (auth.rfind(bearer, 0) != 0 || !sameKey(auth.substr(bearer.size()), options_.apiKey)) {
            sendError(res, unauthorized(auth.empty() ? "this server needs an API key: send Authorization: Bearer KEY"
                                                     : "the API key is not the one this server was started with"));
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors httplib answers itself (no such route, body over the limit) get the OpenAI shape too.
    http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        if (res.status == 404) sendError(res, {404, "invalid_request_error", "no route " + req.method + " " + req.path, {}, "not_found"});
        else if (res.status == 413)
            sendError(res, tooLarge("the request body is larger than the limit of " + std::to_string(options_.maxBodyBytes) + " bytes",
                                    "body_too_large"));
        else if (res.status == 405) sendError(res, {405, "invalid_request_error", "method not allowed", {}, {}});
        else if (res.status == 400) sendError(res, badRequest("the request could not be read"));
    });
    http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unexpected error";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        sendError(res, internalError(what));
    });
    http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) { health(res); });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) { models(res); });
    http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { chat(req, res); });
}

void ApiServer::health(httplib::Response& res) {
    const State s = state_;
    json body = {{"status", s == State::ready ? "ok" : s == State::loading ? "loading" : "failed"}};
    if (s == State::ready) {
        body["queue"] = {{"waiting", queue_->waiting()}, {"running", queue_->busy() ? 1 : 0}, {"capacity", queue_->capacity()}};
        body["engine"] = runner_->counters();
        body["model"] = runner_->plainModelId();
    }
    sendJson(res, s == State::ready ? 200 : 503, body);
}

void ApiServer::models(httplib::Response& res) {
    if (state_ != State::ready) return sendError(res, unavailable("the model is still loading; try again shortly"));
    json data = json::array();
    auto model = [](const std::string& id) { return json{{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "quire"}}; };
    data.push_back(model(runner_->plainModelId()));
    auto libraries = ctx_.db->libraries();
    if (!libraries) return sendError(res, internalError(libraries.status().message()));
    for (const app::LibraryRow& lib : libraries.value()) data.push_back(model(kLibraryModelPrefix + lib.name.toStdString()));
    sendJson(res, 200, {{"object", "list"}, {"data", data}});
}

// What clients sent, one JSON document per line: lets an operator (and the tests) see exactly what a
// client such as Quire's remote backend sends, e.g. that its context is the same every time.
void ApiServer::logRequest(const std::string& body) {
    if (options_.requestLog.empty()) return;
    std::lock_guard lock(logMutex_);
    std::ofstream log(options_.requestLog, std::ios::app | std::ios::binary);
    log << jsonText(json::parse(body, nullptr, false)) << '\n';
    if (!log) std::fprintf(stderr, "serve: cannot write the request log %s\n", options_.requestLog.c_str());
}

void ApiServer::chat(const httplib::Request& req, httplib::Response& res) {
    if (state_ != State::ready) return sendError(res, unavailable("the model is still loading; try again shortly"));
    ApiError error;
    auto request = parseChatRequest(req.body, error);
    if (!request) return sendError(res, error);
    logRequest(req.body);
    auto job = std::make_shared<Job>(std::move(*request));
    if (!queue_->submit(job))
        return sendError(res, queueFull("the server is busy: " + std::to_string(queue_->capacity()) + " requests are already waiting; retry later"));

    // Wait for the job to start (or be refused): only then is the status known. A client that
    // leaves meanwhile gives up its place in the queue at once (JobQueue::withdraw).
    const ApiError shuttingDown = unavailable("the server is shutting down", "shutting_down");
    ClientConnection client(req);
    // What the log shows for a client that left (nothing reaches it): not an empty 200.
    const ApiError clientGone = badRequest("the client closed the connection before the answer");
    JobEvent first;
    while (true) {
        if (auto e = job->next(std::chrono::milliseconds(200))) {
            first = std::move(*e);
            break;
        }
        if (stopping_) return sendError(res, shuttingDown);
        if (client.gone()) {
            queue_->withdraw(job);
            return sendError(res, clientGone);
        }
    }
    if (first.kind == JobEvent::Kind::failed) return sendError(res, first.error);
    const CompletionIds ids = newCompletionIds(job->request.model);

    if (!job->request.stream) {
        // Nothing is written until the answer is complete, so the connection is watched instead
        // (a poll without waiting, at every token or quiet 200 ms): a client that gave up (a
        // timeout, a closed program) stops the generation.
        while (true) {
            auto e = job->next(std::chrono::milliseconds(200));
            if (!e && stopping_) return sendError(res, shuttingDown);
            if (client.gone()) {
                queue_->withdraw(job);
                return sendError(res, clientGone);
            }
            if (!e) continue;
            if (e->kind == JobEvent::Kind::failed) return sendError(res, e->error);
            if (e->kind == JobEvent::Kind::finished) return sendJson(res, 200, completionObject(ids, e->info));
        }
    }

    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job, ids, sentRole = false](size_t, httplib::DataSink& sink) mutable {
            auto write = [&](const std::string& s) {
                if (!sink.write(s.data(), s.size())) {
                    job->cancel = true;
                    return false;
                }
                return true;
            };
            if (!sentRole) {
                sentRole = true;
                return write(sseEvent(completionChunk(ids, {{"role", "assistant"}, {"content", ""}}, nullptr)));
            }
            auto e = job->next(kPoll);
            if (!e) {
                // Nothing to send: find out whether the client is still there, and the server.
                if (!sink.is_writable() || stopping_) {
                    job->cancel = true;
                    return false;
                }
                return true;
            }
            switch (e->kind) {
            case JobEvent::Kind::text: return write(sseEvent(completionChunk(ids, {{"content", e->text}}, nullptr)));
            case JobEvent::Kind::finished:
                if (!write(sseEvent(completionChunk(ids, json::object(), e->info["finish_reason"])))) return false;
                if (job->request.includeUsage && !write(sseEvent(usageChunk(ids, e->info)))) return false;
                if (!write(sseDone())) return false;
                sink.done();
                return true;
            case JobEvent::Kind::failed:
                if (!write(sseEvent(e->error.body()))) return false;
                sink.done();
                return true;
            case JobEvent::Kind::started: return true;
            }
            return true;
        },
        [job](bool success) {
            if (!success) job->cancel = true;
        });
}

}  // namespace quire::server
