#pragma once
// Host <-> device copies of large state sections through two pinned buffers on a stream of their
// own, double-buffered so the host-side memcpy of one chunk overlaps the DMA of the other. Plain
// cudaMemcpy from pageable memory stages through small driver buffers one at a time. Falls back to
// plain copies when pinned memory cannot be had.

#include <cuda_runtime.h>

#include <cstdint>

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

private:
    bool ready();  // allocates on first use; false: use plain copies
    static constexpr int64_t kChunk = int64_t{32} << 20;
    static constexpr int64_t kDirect = int64_t{1} << 20;  // smaller copies go straight through cudaMemcpy
    void* buf_[2] = {nullptr, nullptr};
    cudaEvent_t done_[2] = {nullptr, nullptr};
    cudaStream_t stream_ = nullptr;
    bool tried_ = false, ok_ = false;
};

}  // namespace quire::cuda
