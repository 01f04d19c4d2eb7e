// Launchers under forced device limits (kernels/device_limits.h): where the preferred configuration
// does not fit, a smaller one runs and gives the same result bit for bit (block attention's 2-stage
// ring against its 3-stage one); where nothing fits, the launcher refuses with cudaErrorInvalidValue
// instead of failing inside the launch. The *_99kb ctest entries run the CPU twins under a 99 KB
// card's limits; this test goes below them to reach the fallbacks.
#include <cuda_runtime.h>

#include <QtTest>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "attention_ops.h"
#include "bf16.h"
#include "device_buffer.h"
#include "device_limits.h"
#include "gptq_dequant.h"
#include "gptq_gemv.h"
#include "gpu_test_main.h"

using quire::test::DeviceBuffer;
namespace k = quire::kernels;

namespace {

std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = quire::float_to_bf16(d(rng));
    return v;
}

// Sets QUIRE_GPU_SMEM_LIMIT_KB for its lifetime (restoring what was there) and re-reads the limits.
class ForcedSmem {
public:
    explicit ForcedSmem(int kb) {
        if (const char* v = std::getenv("QUIRE_GPU_SMEM_LIMIT_KB")) saved_ = v, had_ = true;
        setenv("QUIRE_GPU_SMEM_LIMIT_KB", std::to_string(kb).c_str(), 1);
        k::reset_device_limits();
    }
    ~ForcedSmem() {
        if (had_) setenv("QUIRE_GPU_SMEM_LIMIT_KB", saved_.c_str(), 1);
        else unsetenv("QUIRE_GPU_SMEM_LIMIT_KB");
        k::reset_device_limits();
    }
    ForcedSmem(const ForcedSmem&) = delete;
    ForcedSmem& operator=(const ForcedSmem&) = delete;

private:
    std::string saved_;
    bool had_ = false;
};

struct Attention {
    int64_t tokens = 300, kv = 2, group = 2, d = 128;
    std::vector<uint16_t> q, kk, v;
    Attention(int64_t group_, int64_t d_) : group(group_), d(d_) {
        q = random_bf16(tokens * kv * group * d, 1);
        kk = random_bf16(tokens * kv * d, 2);
        v = random_bf16(tokens * kv * d, 3);
    }
    // Dense attention over all tokens; the launcher's result code, and the output in `out`.
    cudaError_t run(std::vector<uint16_t>& out) const {
        DeviceBuffer<uint16_t> dq(q), dk(kk), dv(v), dout(tokens * kv * group * d);
        const cudaError_t e = k::launch_block_attention(dq.get(), dk.get(), dv.get(), tokens, 0, kv, group, d, nullptr, tokens, 0, dout.get(), nullptr);
        if (e != cudaSuccess) return e;
        if (const cudaError_t s = cudaDeviceSynchronize(); s != cudaSuccess) return s;
        if (!dout.guard_intact()) return cudaErrorUnknown;
        out = dout.download();
        return cudaSuccess;
    }
};

}  // namespace

class TestGpuLimits : public QObject {
    Q_OBJECT
private slots:
    void forced_limit_is_read() {
        const int64_t full = k::device_limits().smem_optin_per_block;
        {
            ForcedSmem f(70);
            QCOMPARE(k::device_limits().smem_optin_per_block, int64_t{70 * 1024});
            QVERIFY(k::device_limits().smem_forced);
        }
        QCOMPARE(k::device_limits().smem_optin_per_block, full);
        {
            ForcedSmem f(100000);  // never raises the real limit
            QCOMPARE(k::device_limits().smem_optin_per_block, full);
        }
    }

    // 3 stages of 64 x 128 K and V (96 KB) do not fit 70 KB; 2 stages (64 KB) do, with the same result.
    void block_attention_falls_back_to_two_stages() {
        const Attention a(2, 128);
        std::vector<uint16_t> three, two;
        QCOMPARE(a.run(three), cudaSuccess);
        {
            ForcedSmem f(70);
            QCOMPARE(a.run(two), cudaSuccess);
        }
        QCOMPARE(two.size(), three.size());
        int64_t diff = 0;
        for (size_t i = 0; i < two.size(); ++i) diff += two[i] != three[i];
        QVERIFY2(diff == 0, qPrintable(QString("%1 outputs differ between the 2- and 3-stage rings").arg(diff)));
    }

    void refuses_when_nothing_fits() {
        ForcedSmem f(16);
        std::vector<uint16_t> out;
        QCOMPARE(Attention(2, 128).run(out), cudaErrorInvalidValue);   // block attention: 64 KB at least
        QCOMPARE(Attention(16, 128).run(out), cudaErrorInvalidValue);  // warp attention: 32 KB
        const int64_t heads = 2, d = 128, tokens = 64;
        DeviceBuffer<uint16_t> q(tokens * heads * d), o(tokens * heads * d);
        DeviceBuffer<double> slopes(std::vector<double>{0.1, 0.2});
        DeviceBuffer<float> state(heads * d * d);
        QCOMPARE(k::launch_lightning(q.get(), q.get(), q.get(), tokens, 0, heads, d, d, slopes.get(), state.get(), o.get(), nullptr),
                 cudaErrorInvalidValue);  // 88 KB
        QCOMPARE(cudaGetLastError(), cudaSuccess);  // refused before any launch
    }

    // Lightning at d = 64 needs 56 KB: it runs under 70 KB, where d = 128 (88 KB) is refused.
    void lightning_under_70kb() {
        ForcedSmem f(70);
        const int64_t heads = 2, tokens = 100;
        for (int64_t d : {64, 128}) {
            const auto q = random_bf16(tokens * heads * d, 5);
            DeviceBuffer<uint16_t> dq(q), o(tokens * heads * d);
            DeviceBuffer<double> slopes(std::vector<double>{0.1, 0.2});
            DeviceBuffer<float> state(std::vector<float>(static_cast<size_t>(heads * d * d), 0.0f));
            const cudaError_t e = k::launch_lightning(dq.get(), dq.get(), dq.get(), tokens, 0, heads, d, d, slopes.get(), state.get(), o.get(), nullptr);
            QCOMPARE(e, d == 64 ? cudaSuccess : cudaErrorInvalidValue);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        }
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuLimits)
#include "test_gpu_limits.moc"
