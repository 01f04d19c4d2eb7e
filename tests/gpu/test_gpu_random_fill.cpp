// The random bf16 fill (synthetic benchmark weights) against its CPU twin: the same counter hash
// (splitmix64 of seed and index, kernels/random_fill.cu) evaluated here, bit for bit, so a synthetic
// model is the same on every GPU.
#include <cuda_runtime.h>

#include <QtTest>

#include <cmath>
#include <vector>

#include "bf16.h"
#include "device_buffer.h"
#include "gpu_test_main.h"
#include "random_fill.h"

namespace {

uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint16_t cpu_value(uint64_t seed, int64_t i, float a) {
    const uint64_t r = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
    const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
    return quire::float_to_bf16((2.0f * u - 1.0f) * a);
}

}  // namespace

class TestGpuRandomFill : public QObject {
    Q_OBJECT
private slots:
    void matches_cpu() {
        // More elements than the grid's threads (4096 x 256), so the grid-stride loop is covered.
        const int64_t n = 1100000 + 13;
        const uint64_t seed = 42;
        const float stddev = 0.02f;
        quire::test::DeviceBuffer<uint16_t> out(n);
        QVERIFY(out.ok());
        QCOMPARE(quire::kernels::launch_fill_random_bf16(out.get(), n, seed, stddev, nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        QVERIFY2(out.guard_intact(), "the fill wrote past its output");
        const auto got = out.download();
        const float a = stddev * 1.7320508f;
        int64_t bad = 0, first = -1;
        double sum2 = 0;
        for (int64_t i = 0; i < n; ++i) {
            const float v = quire::bf16_to_float(got[static_cast<size_t>(i)]);
            sum2 += double(v) * v;
            if (got[static_cast<size_t>(i)] != cpu_value(seed, i, a)) {
                if (first < 0) first = i;
                ++bad;
            }
        }
        QVERIFY2(bad == 0, qPrintable(QString("%1 values differ from the CPU twin, first at %2").arg(bad).arg(first)));
        const double sd = std::sqrt(sum2 / double(n));
        QVERIFY2(std::fabs(sd - stddev) < 0.01 * stddev, qPrintable(QString("standard deviation %1, want %2").arg(sd).arg(stddev)));
        QCOMPARE(quire::kernels::launch_fill_random_bf16(out.get(), 0, seed, stddev, nullptr), cudaSuccess);
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuRandomFill)
#include "test_gpu_random_fill.moc"
