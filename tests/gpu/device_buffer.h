#pragma once
// A device allocation for GPU tests with guard elements after the data: filled with a pattern
// before a launch, checked after it, so a kernel that writes past its output is caught.

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace quire::test {

template <typename T>
class DeviceBuffer {
public:
    static constexpr int64_t kGuard = 256;
    explicit DeviceBuffer(int64_t n) : n_(n) {
        if (cudaMalloc(&ptr_, static_cast<size_t>(n + kGuard) * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
        poison();
    }
    DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(static_cast<int64_t>(host.size())) { upload(host); }
    ~DeviceBuffer() { cudaFree(ptr_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    T* get() { return ptr_; }
    bool ok() const { return ptr_ != nullptr; }
    void poison() { cudaMemset(ptr_, 0xA5, static_cast<size_t>(n_ + kGuard) * sizeof(T)); }
    void upload(const std::vector<T>& host) { cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice); }
    std::vector<T> download() const {
        std::vector<T> out(static_cast<size_t>(n_));
        cudaMemcpy(out.data(), ptr_, out.size() * sizeof(T), cudaMemcpyDeviceToHost);
        return out;
    }
    // True when no guard byte changed.
    bool guard_intact() const {
        std::vector<uint8_t> g(static_cast<size_t>(kGuard) * sizeof(T));
        cudaMemcpy(g.data(), ptr_ + n_, g.size(), cudaMemcpyDeviceToHost);
        for (uint8_t b : g)
            if (b != 0xA5) return false;
        return true;
    }

private:
    T* ptr_ = nullptr;
    int64_t n_;
};

}  // namespace quire::test
