#include "cuda/pinned_staging.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace quire::cuda {

namespace {
Status failed(cudaError_t e, const char* what) {
    cudaGetLastError();
    return Status(ErrorCode::device_error, std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}
}  // namespace

PinnedStaging::~PinnedStaging() {
    if (pool_stream_) cudaStreamSynchronize(pool_stream_);
    for (int i = 0; i < kPool; ++i) {
        if (pool_[i]) cudaFreeHost(pool_[i]);
        if (pool_done_[i]) cudaEventDestroy(pool_done_[i]);
    }
    if (pool_stream_) cudaStreamDestroy(pool_stream_);
    if (stream_) cudaStreamSynchronize(stream_);
    for (int i = 0; i < 2; ++i) {
        if (buf_[i]) cudaFreeHost(buf_[i]);
        if (done_[i]) cudaEventDestroy(done_[i]);
    }
    if (stream_) cudaStreamDestroy(stream_);
}

bool PinnedStaging::ready() {
    if (tried_) return ok_;
    tried_ = true;
    ok_ = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) == cudaSuccess;
    for (int i = 0; i < 2 && ok_; ++i)
        ok_ = cudaMallocHost(&buf_[i], static_cast<size_t>(kChunk)) == cudaSuccess &&
              cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming) == cudaSuccess;
    if (!ok_) cudaGetLastError();
    return ok_;
}

Status PinnedStaging::upload(void* device, const void* host, int64_t bytes) {
    if (bytes <= 0) return Status::ok();
    if (bytes <= kDirect || !ready()) {
        const cudaError_t e = cudaMemcpy(device, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice);
        return e == cudaSuccess ? Status::ok() : failed(e, "state upload");
    }
    const auto* src = static_cast<const uint8_t*>(host);
    auto* dst = static_cast<uint8_t*>(device);
    for (int64_t off = 0, i = 0; off < bytes; off += kChunk, ++i) {
        const int b = static_cast<int>(i & 1);
        const auto n = static_cast<size_t>(std::min(kChunk, bytes - off));
        if (i >= 2)
            if (cudaError_t e = cudaEventSynchronize(done_[b]); e != cudaSuccess) return failed(e, "state upload");
        std::memcpy(buf_[b], src + off, n);
        if (cudaError_t e = cudaMemcpyAsync(dst + off, buf_[b], n, cudaMemcpyHostToDevice, stream_); e != cudaSuccess)
            return failed(e, "state upload");
        if (cudaError_t e = cudaEventRecord(done_[b], stream_); e != cudaSuccess) return failed(e, "state upload");
    }
    const cudaError_t e = cudaStreamSynchronize(stream_);
    return e == cudaSuccess ? Status::ok() : failed(e, "state upload");
}

Status PinnedStaging::download(void* host, const void* device, int64_t bytes) {
    if (bytes <= 0) return Status::ok();
    if (bytes <= kDirect || !ready()) {
        const cudaError_t e = cudaMemcpy(host, device, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost);
        return e == cudaSuccess ? Status::ok() : failed(e, "state download");
    }
    const auto* src = static_cast<const uint8_t*>(device);
    auto* dst = static_cast<uint8_t*>(host);
    const int64_t chunks = (bytes + kChunk - 1) / kChunk;
    auto issue = [&](int64_t i) -> cudaError_t {
        const int b = static_cast<int>(i & 1);
        const int64_t off = i * kChunk;
        const auto n = static_cast<size_t>(std::min(kChunk, bytes - off));
        if (cudaError_t e = cudaMemcpyAsync(buf_[b], src + off, n, cudaMemcpyDeviceToHost, stream_); e != cudaSuccess) return e;
        return cudaEventRecord(done_[b], stream_);
    };
    for (int64_t i = 0; i < std::min<int64_t>(2, chunks); ++i)
        if (cudaError_t e = issue(i); e != cudaSuccess) return failed(e, "state download");
    for (int64_t i = 0; i < chunks; ++i) {
        const int b = static_cast<int>(i & 1);
        if (cudaError_t e = cudaEventSynchronize(done_[b]); e != cudaSuccess) return failed(e, "state download");
        const int64_t off = i * kChunk;
        std::memcpy(dst + off, buf_[b], static_cast<size_t>(std::min(kChunk, bytes - off)));
        if (i + 2 < chunks)
            if (cudaError_t e = issue(i + 2); e != cudaSuccess) return failed(e, "state download");
    }
    return Status::ok();
}

bool PinnedStaging::pool_ready() {
    if (pool_tried_) return pool_ok_;
    pool_tried_ = true;
    pool_ok_ = cudaStreamCreateWithFlags(&pool_stream_, cudaStreamNonBlocking) == cudaSuccess;
    for (int i = 0; i < kPool && pool_ok_; ++i)
        pool_ok_ = cudaMallocHost(&pool_[i], static_cast<size_t>(kChunk)) == cudaSuccess &&
                   cudaEventCreateWithFlags(&pool_done_[i], cudaEventDisableTiming) == cudaSuccess;
    if (!pool_ok_) cudaGetLastError();
    return pool_ok_;
}

int PinnedStaging::index_of(const void* buffer) const {
    for (int i = 0; i < kPool; ++i)
        if (buffer && pool_[i] == buffer) return i;
    return -1;
}

bool PinnedStaging::owns(const void* buffer) const { return index_of(buffer) >= 0; }

void* PinnedStaging::acquire(int64_t bytes) {
    if (bytes <= 0 || bytes > kChunk) return nullptr;
    int got = -1;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!pool_ready()) return nullptr;
        freed_.wait(lock, [&] {
            for (int i = 0; i < kPool; ++i)
                if (!held_[i]) return true;
            return false;
        });
        for (int i = 0; i < kPool && got < 0; ++i)
            if (!held_[i]) got = i;
        held_[got] = true;
    }
    // Its last copy to the device must be done before the file's bytes overwrite it.
    if (cudaError_t e = cudaEventSynchronize(pool_done_[got]); e != cudaSuccess) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (pool_error_ == cudaSuccess) pool_error_ = e;
        cudaGetLastError();
    }
    return pool_[got];
}

void PinnedStaging::release(void* buffer) {
    const int i = index_of(buffer);
    if (i < 0) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        held_[i] = false;
    }
    freed_.notify_one();
}

Status PinnedStaging::upload_async(void* device, const void* buffer, int64_t bytes) {
    const int i = index_of(buffer);
    if (i < 0) return upload(device, buffer, bytes);
    cudaError_t e = cudaMemcpyAsync(device, buffer, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, pool_stream_);
    if (e == cudaSuccess) e = cudaEventRecord(pool_done_[i], pool_stream_);
    release(const_cast<void*>(buffer));
    return e == cudaSuccess ? Status::ok() : failed(e, "state upload");
}

Status PinnedStaging::finish() {
    cudaError_t e = pool_stream_ ? cudaStreamSynchronize(pool_stream_) : cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (e == cudaSuccess) e = pool_error_;
        pool_error_ = cudaSuccess;
    }
    return e == cudaSuccess ? Status::ok() : failed(e, "state upload");
}

}  // namespace quire::cuda
