#include <cuda_runtime.h>

#include "device_probe.h"

namespace quire::kernels {

DeviceProbe probe_devices() {
    DeviceProbe p;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        p.reason = std::string("no usable CUDA device: ") + cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky-free error so later calls start clean
        return p;
    }
    if (count == 0) {
        p.reason = "no CUDA device present";
        return p;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        p.reason = "cannot read the properties of CUDA device 0";
        return p;
    }
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(0) != cudaSuccess || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        p.reason = "cannot open CUDA device 0";
        return p;
    }
    p.device_count = count;
    p.name = prop.name;
    p.total_memory = static_cast<int64_t>(total_b);
    p.free_memory = static_cast<int64_t>(free_b);
    p.compute_major = prop.major;
    p.compute_minor = prop.minor;
    for (int d = 0; d < count; ++d) {
        DeviceDescription desc;
        cudaDeviceProp dp{};
        size_t f = 0, t = 0;
        if (cudaGetDeviceProperties(&dp, d) == cudaSuccess && cudaSetDevice(d) == cudaSuccess && cudaMemGetInfo(&f, &t) == cudaSuccess) {
            desc.name = dp.name;
            desc.total_memory = static_cast<int64_t>(t);
            desc.free_memory = static_cast<int64_t>(f);
        } else {
            cudaGetLastError();
            desc.name = "(unavailable)";
        }
        p.devices.push_back(desc);
    }
    cudaSetDevice(0);
    return p;
}

}  // namespace quire::kernels
