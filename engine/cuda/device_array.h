#pragma once
// An owning device allocation (cudaMalloc, never managed memory). Moves, never copies implicitly.

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

namespace quire::cuda {

template <typename T>
class DeviceArray {
public:
    DeviceArray() = default;
    ~DeviceArray() { cudaFree(ptr_); }
    DeviceArray(DeviceArray&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        std::swap(ptr_, o.ptr_);
        std::swap(n_, o.n_);
        return *this;
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    cudaError_t allocate(int64_t n) {
        cudaFree(ptr_);
        ptr_ = nullptr;
        n_ = 0;
        if (n <= 0) return cudaSuccess;
        const cudaError_t e = cudaMalloc(&ptr_, static_cast<size_t>(n) * sizeof(T));
        if (e == cudaSuccess) n_ = n;
        return e;
    }
    T* get() const { return ptr_; }
    int64_t size() const { return n_; }

private:
    T* ptr_ = nullptr;
    int64_t n_ = 0;
};

}  // namespace quire::cuda
