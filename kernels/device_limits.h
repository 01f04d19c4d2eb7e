#pragma once
// What the current GPU allows a kernel, read once: every launcher picks its tile configuration from
// these numbers instead of Hopper constants (227 KB of opt-in shared memory on sm_90, 99 KB on
// sm_86/89/120, 163 KB on sm_80).
//
// QUIRE_GPU_SMEM_LIMIT_KB lowers the shared-memory limits to emulate a smaller card on a larger one
// (QUIRE_GPU_SMEM_LIMIT_KB=99 makes an H200 choose what an RTX 4090 would); it never raises them.
// QUIRE_GPU_ARCH_LIMIT (for example 86) makes launchers that have an architecture-specific path
// (Hopper's wgmma) take the portable one, as a card of that architecture would.

#include <cstdint>

namespace quire::kernels {

struct DeviceLimits {
    int device = -1;
    int sm_major = 0;
    int sm_minor = 0;
    int sm_count = 0;
    int64_t smem_optin_per_block = 0;  // bytes a block may opt in to (cudaDevAttrMaxSharedMemoryPerBlockOptin)
    int64_t smem_per_sm = 0;           // bytes per multiprocessor
    int64_t regs_per_block = 0;
    bool smem_forced = false;          // QUIRE_GPU_SMEM_LIMIT_KB applied
    bool arch_forced = false;          // QUIRE_GPU_ARCH_LIMIT applied

    int sm() const { return sm_major * 10 + sm_minor; }
    bool fits_smem(int64_t bytes) const { return bytes <= smem_optin_per_block; }
};

// Limits of the current device (cudaGetDevice), cached per device. On a query failure every field
// stays 0 and `device` -1, so any launcher that checks fits_smem() refuses instead of guessing.
const DeviceLimits& device_limits();

// Forget the cached limits (tests that change the environment variables call this).
void reset_device_limits();

}  // namespace quire::kernels
