#pragma once
// An owning device allocation (cudaMalloc, never managed memory). Moves, never copies implicitly.

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <utility>

namespace quire::cuda {

// Bytes held by every DeviceArray of the process: what the engine has taken from the GPU, measured
// against a GPU memory budget (EngineOptions::gpu_memory_budget_bytes).
inline std::atomic<int64_t>& device_bytes_in_use() {
    static std::atomic<int64_t> bytes{0};
    return bytes;
}

template <typename T>
class DeviceArray {
public:
    DeviceArray() = default;
    ~DeviceArray() { release(); }
    DeviceArray(DeviceArray&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        std::swap(ptr_, o.ptr_);
        std::swap(n_, o.n_);
        return *this;
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    cudaError_t allocate(int64_t n) {
        release();
        if (n <= 0) return cudaSuccess;
        const cudaError_t e = cudaMalloc(&ptr_, static_cast<size_t>(n) * sizeof(T));
        if (e == cudaSuccess) {
            n_ = n;
            device_bytes_in_use() += n * static_cast<int64_t>(sizeof(T));
        }
        return e;
    }
    T* get() const { return ptr_; }
    int64_t size() const { return n_; }

private:
    void release() {
        if (ptr_) {
            cudaFree(ptr_);
            device_bytes_in_use() -= n_ * static_cast<int64_t>(sizeof(T));
        }
        ptr_ = nullptr;
        n_ = 0;
    }
    T* ptr_ = nullptr;
    int64_t n_ = 0;
};

}  // namespace quire::cuda
