#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "device_limits.h"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

constexpr int kMaxDevices = 16;

std::mutex g_mutex;
DeviceLimits g_limits[kMaxDevices];
bool g_valid[kMaxDevices] = {};

int64_t env_int(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return 0;
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    return (end && *end == '\0' && n > 0) ? static_cast<int64_t>(n) : 0;  // ignore junk: never raise limits by accident
}

DeviceLimits query(int device) {
    DeviceLimits l;
    int major = 0, minor = 0, sms = 0, optin = 0, per_sm = 0, regs = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&regs, cudaDevAttrMaxRegistersPerBlock, device) != cudaSuccess) {
        cudaGetLastError();
        return l;
    }
    l.device = device;
    l.sm_major = major;
    l.sm_minor = minor;
    l.sm_count = sms;
    l.smem_optin_per_block = optin;
    l.smem_per_sm = per_sm;
    l.regs_per_block = regs;
    if (const int64_t kb = env_int("QUIRE_GPU_SMEM_LIMIT_KB"); kb > 0 && kb * 1024 < l.smem_optin_per_block) {
        l.smem_optin_per_block = kb * 1024;
        l.smem_per_sm = std::min(l.smem_per_sm, kb * 1024 + 1024);  // a 99 KB card has 100 KB per SM
        l.smem_forced = true;
    }
    if (const int64_t arch = env_int("QUIRE_GPU_ARCH_LIMIT"); arch > 0 && arch < l.sm()) {
        l.sm_major = static_cast<int>(arch / 10);
        l.sm_minor = static_cast<int>(arch % 10);
        l.arch_forced = true;
    }
    return l;
}

}  // namespace

const DeviceLimits& device_limits() {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) {
        cudaGetLastError();
        static const DeviceLimits none;
        return none;
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_valid[device]) {
        g_limits[device] = query(device);
        g_valid[device] = g_limits[device].device >= 0;
    }
    return g_limits[device];
}

void reset_device_limits() {
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fill(std::begin(g_valid), std::end(g_valid), false);
}

bool pdl_enabled() {
    static const bool off = [] {
        const char* v = std::getenv("QUIRE_CUDA_PDL");
        return v && std::strcmp(v, "0") == 0;
    }();
    return !off && device_limits().sm_major >= 9;
}

}  // namespace quire::kernels
