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

}  // namespace quire::cuda
