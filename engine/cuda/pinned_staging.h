#pragma once
// Host <-> device copies of large state sections through two pinned buffers on a stream of their
// own, double-buffered so the host-side memcpy of one chunk overlaps the DMA of the other. Plain
// cudaMemcpy from pageable memory stages through small driver buffers one at a time. Falls back to
// plain copies when pinned memory cannot be had.

#include <cuda_runtime.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "status.h"

namespace quire::cuda {

class PinnedStaging {
public:
    PinnedStaging() = default;
    ~PinnedStaging();
    PinnedStaging(const PinnedStaging&) = delete;
    PinnedStaging& operator=(const PinnedStaging&) = delete;

    Status upload(void* device, const void* host, int64_t bytes);
    Status download(void* host, const void* device, int64_t bytes);

    // Restoring a state: the file is read straight into one of kPool pinned buffers (acquire, from
    // any thread; waits while all are taken or still uploading), which upload_async copies to the
    // device on the staging stream and hands back at once: the next acquire of that buffer waits
    // for its copy, so reading, hashing and uploading overlap. nullptr when bytes > kChunk or pinned
    // memory cannot be had. finish() waits for every copy and reports the first failure.
    void* acquire(int64_t bytes);
    void release(void* buffer);
    bool owns(const void* buffer) const;
    Status upload_async(void* device, const void* buffer, int64_t bytes);
    Status finish();

private:
    bool ready();  // allocates on first use; false: use plain copies
    static constexpr int64_t kChunk = int64_t{32} << 20;
    static constexpr int64_t kDirect = int64_t{1} << 20;  // smaller copies go straight through cudaMemcpy
    void* buf_[2] = {nullptr, nullptr};
    cudaEvent_t done_[2] = {nullptr, nullptr};
    cudaStream_t stream_ = nullptr;
    bool tried_ = false, ok_ = false;

    static constexpr int kPool = 6;
    bool pool_ready();  // allocates the pool on first use (under mutex_)
    int index_of(const void* buffer) const;
    std::mutex mutex_;
    std::condition_variable freed_;
    void* pool_[kPool] = {};
    cudaEvent_t pool_done_[kPool] = {};
    bool held_[kPool] = {};
    bool pool_tried_ = false, pool_ok_ = false;
    cudaStream_t pool_stream_ = nullptr;
    cudaError_t pool_error_ = cudaSuccess;
};

}  // namespace quire::cuda
