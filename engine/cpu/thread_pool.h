#pragma once
// A fixed pool of worker threads with one operation: parallel_for over an index range.
// The calling thread works too, so a pool of N threads uses N cores.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quire::cpu {

class ThreadPool {
public:
    explicit ThreadPool(int threads);  // threads <= 0: hardware concurrency
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }
    // Calls fn(i) for every i in [0, n), spread over the threads; returns when all are done.
    void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

private:
    void worker_loop();
    void run_items();

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    std::atomic<const std::function<void(int64_t)>*> fn_{nullptr};
    std::atomic<int64_t> n_{0};
    std::atomic<int64_t> next_{0};
    int active_ = 0;
    uint64_t generation_ = 0;
    bool stop_ = false;
};

}  // namespace quire::cpu
