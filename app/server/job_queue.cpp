#include "job_queue.h"

namespace quire::server {

void Job::post(JobEvent event) {
    {
        std::lock_guard lock(mutex_);
        events_.push_back(std::move(event));
    }
    ready_.notify_all();
}

std::optional<JobEvent> Job::next(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, wait, [&] { return !events_.empty(); })) return std::nullopt;
    JobEvent e = std::move(events_.front());
    events_.pop_front();
    return e;
}

JobQueue::JobQueue(size_t capacity, std::function<void()> prepare, std::function<void(Job&)> run)
    : capacity_(capacity), prepare_(std::move(prepare)), run_(std::move(run)), worker_([this] { work(); }) {}

JobQueue::~JobQueue() { stop(); }

bool JobQueue::submit(std::shared_ptr<Job> job) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || waiting_.size() >= capacity_) return false;
        waiting_.push_back(std::move(job));
    }
    wake_.notify_all();
    return true;
}

void JobQueue::withdraw(const std::shared_ptr<Job>& job) {
    job->cancel = true;
    std::lock_guard lock(mutex_);
    std::erase(waiting_, job);
}

size_t JobQueue::waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_.size();
}

bool JobQueue::busy() const {
    std::lock_guard lock(mutex_);
    return busy_;
}

void JobQueue::shutdown() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        if (running_) running_->cancel = true;
        for (auto& job : waiting_) {
            job->cancel = true;
            JobEvent e;
            e.kind = JobEvent::Kind::failed;
            e.error = unavailable("the server is shutting down", "shutting_down");
            job->post(std::move(e));
        }
        waiting_.clear();
    }
    wake_.notify_all();
}

void JobQueue::stop() {
    shutdown();
    std::lock_guard lock(joinMutex_);
    if (worker_.joinable()) worker_.join();
}

void JobQueue::work() {
    if (prepare_) prepare_();
    while (true) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
            if (stopping_) return;
            job = std::move(waiting_.front());
            waiting_.pop_front();
            busy_ = true;
            running_ = job;
        }
        run_(*job);
        std::lock_guard lock(mutex_);
        busy_ = false;
        running_.reset();
    }
}

}  // namespace quire::server
