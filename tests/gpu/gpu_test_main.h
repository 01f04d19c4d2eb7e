#pragma once
// main() for tests labelled `gpu`: without a usable CUDA device they print why and exit with 77,
// which ctest reports as "Skipped" (SKIP_RETURN_CODE) instead of a silent pass.

#include <QtTest>

#include <cstdio>

#include "device_probe.h"

#define QUIRE_GPU_TEST_MAIN(TestClass)                                                    \
    int main(int argc, char** argv) {                                                     \
        const auto probe = quire::kernels::probe_devices();                               \
        if (probe.device_count == 0) {                                                    \
            std::printf("SKIPPED: %s\n", probe.reason.c_str());                           \
            return 77;                                                                    \
        }                                                                                 \
        std::printf("GPU: %s, %.1f GiB\n", probe.name.c_str(), static_cast<double>(probe.total_memory) / 1073741824.0); \
        TestClass tc;                                                                     \
        return QTest::qExec(&tc, argc, argv);                                             \
    }
