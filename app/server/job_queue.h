#pragma once
// The server's engine jobs: a bounded queue in front of one worker thread, so the engine runs one
// job at a time and a burst of clients is answered in turn (or told 429 when the queue is full).
// A Job carries its request, a cancel flag the HTTP side sets when its client goes away, and the
// events the worker posts back (started, text, finished, failed).

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "api_error.h"
#include "chat_request.h"

namespace quire::server {

struct JobEvent {
    enum class Kind { started, text, finished, failed };
    Kind kind = Kind::text;
    std::string text;     // text: the next piece of the answer
    nlohmann::json info;  // started: the prompt's numbers; finished: finish_reason, usage, counters
    ApiError error;       // failed
};

class Job {
public:
    explicit Job(ChatRequest r) : request(std::move(r)) {}
    const ChatRequest request;
    std::atomic<bool> cancel{false};

    void post(JobEvent event);
    // The next event, waiting at most `wait`; nothing on timeout.
    std::optional<JobEvent> next(std::chrono::milliseconds wait);

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<JobEvent> events_;
};

class JobQueue {
public:
    // prepare: runs first on the worker thread (loads the model); run: one job, posting its events.
    JobQueue(size_t capacity, std::function<void()> prepare, std::function<void(Job&)> run);
    ~JobQueue();
    // False when `capacity` jobs are already waiting.
    bool submit(std::shared_ptr<Job> job);
    // The client of `job` left: a waiting job leaves the queue at once (its place is free for the
    // next client), a running one is cancelled (it ends at its next step).
    void withdraw(const std::shared_ptr<Job>& job);
    size_t capacity() const { return capacity_; }
    size_t waiting() const;
    bool busy() const;
    // Cancels the running job and fails the waiting ones; takes no more. Returns at once.
    void shutdown();
    // shutdown(), then waits for the worker to end.
    void stop();

private:
    void work();

    const size_t capacity_;
    std::function<void()> prepare_;
    std::function<void(Job&)> run_;
    mutable std::mutex mutex_;
    std::mutex joinMutex_;
    std::condition_variable wake_;
    std::deque<std::shared_ptr<Job>> waiting_;
    std::shared_ptr<Job> running_;
    bool busy_ = false, stopping_ = false;
    std::thread worker_;
};

}  // namespace quire::server
