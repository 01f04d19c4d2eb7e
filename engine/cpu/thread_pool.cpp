#include "cpu/thread_pool.h"

namespace quire::cpu {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_items() {
    const int64_t n = n_.load();
    const auto* fn = fn_.load();
    for (int64_t i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) (*fn)(i);
}

void ThreadPool::worker_loop() {
    uint64_t seen = 0;
    while (true) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            ++active_;
        }
        run_items();
        {
            std::lock_guard lock(mutex_);
            if (--active_ == 0) done_.notify_all();
        }
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (workers_.empty() || n == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        n_.store(0);  // late workers of the last round see an empty range until next_ is reset
        fn_.store(&fn);
        next_.store(0);
        n_.store(n);
        ++generation_;
    }
    wake_.notify_all();
    run_items();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return active_ == 0 && next_.load() >= n_; });
}

}  // namespace quire::cpu
