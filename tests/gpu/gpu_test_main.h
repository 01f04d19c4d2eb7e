#pragma once
// main() for tests labelled `gpu`: without a usable CUDA device they print why and exit with 77,
// which ctest reports as "Skipped" (SKIP_RETURN_CODE) instead of a silent pass. It prints the
// limits the kernels will choose their configurations from (kernels/device_limits.h) and, when the
// test runs under QUIRE_GPU_SMEM_LIMIT_KB (the *_99kb entries), fails unless those limits are really
// in force, so a forced-limits run can never quietly test the full-size configuration. A binary
// built with QUIRE_GPU_FORCED_SMEM_KB / QUIRE_GPU_FORCED_ARCH (the *_99kb tests) sets those limits
// itself before anything touches the device.

#include <QtTest>

#include <cstdio>
#include <cstdlib>

#include "device_limits.h"
#include "device_probe.h"

namespace quire::test {

// False (with the reason printed) when QUIRE_GPU_SMEM_LIMIT_KB asks for a limit device_limits() does
// not report.
inline bool report_device_limits() {
    const auto& lim = quire::kernels::device_limits();
    std::printf("limits: sm_%d%s, %d SMs, %lld KB opt-in shared memory per block%s, %lld KB per SM\n", lim.sm(),
                lim.arch_forced ? " (forced)" : "", lim.sm_count, static_cast<long long>(lim.smem_optin_per_block / 1024),
                lim.smem_forced ? " (forced)" : "", static_cast<long long>(lim.smem_per_sm / 1024));
    if (lim.device < 0) {
        std::printf("FAIL: the device limits could not be read\n");
        return false;
    }
    if (const char* kb = std::getenv("QUIRE_GPU_SMEM_LIMIT_KB"); kb && *kb) {
        const long long want = std::atoll(kb) * 1024;
        if (want <= 0 || lim.smem_optin_per_block > want) {
            std::printf("FAIL: QUIRE_GPU_SMEM_LIMIT_KB=%s is not in force\n", kb);
            return false;
        }
    }
    if (const char* arch = std::getenv("QUIRE_GPU_ARCH_LIMIT"); arch && *arch) {
        const int want = std::atoi(arch);
        if (want <= 0 || lim.sm() > want) {
            std::printf("FAIL: QUIRE_GPU_ARCH_LIMIT=%s is not in force\n", arch);
            return false;
        }
    }
    return true;
}

// The limits a *_99kb binary was built to emulate, set before the first launch.
inline void apply_forced_limits() {
#define QUIRE_GPU_STR2(x) #x
#define QUIRE_GPU_STR(x) QUIRE_GPU_STR2(x)
#ifdef QUIRE_GPU_FORCED_SMEM_KB
    setenv("QUIRE_GPU_SMEM_LIMIT_KB", QUIRE_GPU_STR(QUIRE_GPU_FORCED_SMEM_KB), 1);
#endif
#ifdef QUIRE_GPU_FORCED_ARCH
    setenv("QUIRE_GPU_ARCH_LIMIT", QUIRE_GPU_STR(QUIRE_GPU_FORCED_ARCH), 1);
#endif
#undef QUIRE_GPU_STR
#undef QUIRE_GPU_STR2
}

}  // namespace quire::test

#define QUIRE_GPU_TEST_MAIN(TestClass)                                                    \
    int main(int argc, char** argv) {                                                     \
        quire::test::apply_forced_limits();                                               \
        const auto probe = quire::kernels::probe_devices();                               \
        if (probe.device_count == 0) {                                                    \
            std::printf("SKIPPED: %s\n", probe.reason.c_str());                           \
            return 77;                                                                    \
        }                                                                                 \
        std::printf("GPU: %s, %.1f GiB\n", probe.name.c_str(), static_cast<double>(probe.total_memory) / 1073741824.0); \
        if (!quire::test::report_device_limits()) return 1;                               \
        TestClass tc;                                                                     \
        return QTest::qExec(&tc, argc, argv);                                             \
    }
