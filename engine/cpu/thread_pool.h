#pragma once
// A fixed pool of worker threads with one operation: parallel_for over an index range.
// The calling thread works too, so a pool of N threads uses N cores. Every worker takes part in
// every round and the caller waits for all of them, so no worker can outlive its round.

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
    // Not reentrant: one parallel_for at a time per pool.
    void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

private:
    void worker_loop();
    void run_items(const std::function<void(int64_t)>& fn, int64_t n);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const std::function<void(int64_t)>* fn_ = nullptr;  // guarded by mutex_
    int64_t n_ = 0;                                      // guarded by mutex_
    std::atomic<int64_t> next_{0};
    int pending_ = 0;  // workers that have not finished the current round
    uint64_t generation_ = 0;
    bool stop_ = false;
};

}  // namespace quire::cpu
