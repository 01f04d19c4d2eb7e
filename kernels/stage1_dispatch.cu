// Which stage-1 kernel runs (stage1_paths.h): the split decode path for a few queries of group 16,
// Hopper's wgmma kernel or the mma.sync kernel for prefill of group 16, the generic kernel for
// other groups; each prefill configuration checked against device_limits() before it launches.
// Also the wgmma kernel's one-time self-check against the mma.sync kernel.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "attention_ops.h"
#include "device_limits.h"
#include "stage1_paths.h"

namespace quire::kernels {

// stage1.cu, stage1_g16.cu, stage1_split.cu, stage1_wgmma.cu
cudaError_t launch_stage1_generic(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0,
                                  int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* block_scores, cudaStream_t stream);
cudaError_t launch_stage1_g16(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                              int64_t d, int64_t stride, float* block_scores, const Stage1Forced& forced, cudaStream_t stream);
bool stage1_uses_split(int64_t tokens, int64_t kv_heads, int64_t group);
cudaError_t launch_stage1_split(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                                int64_t d, int64_t stride, float* block_scores, float* scratch, cudaStream_t stream);
#ifdef QUIRE_STAGE1_WGMMA
int64_t stage1_wgmma_smem_bytes(int64_t d, int stages);
cudaError_t launch_stage1_wgmma(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                                int64_t d, int64_t stride, float* block_scores, int stages, const Stage1Forced& forced, cudaStream_t stream);
#endif

namespace {

// Shared memory of the mma.sync prefill kernels: a two-stage ring of 64-key tiles plus the pooling
// rows (stage1.cu, stage1_g16.cu). Both fit every supported card (at most 67 KB, group 1, d 128);
// checked so that an emulated smaller card refuses instead of failing at launch.
int64_t mma_sync_smem_bytes(int64_t group, int64_t d) {
    const int64_t queries = group == 16 ? 16 : 8 * (16 / group);
    return 2 * 64 * d * 2 + queries * 68 * 4;
}

// Deepest ring of the wgmma kernel that fits (4 tiles in flight, else 2); 0 where none does or the
// kernel is not built.
int wgmma_stages(int64_t d) {
#ifdef QUIRE_STAGE1_WGMMA
    // QUIRE_STAGE1_WGMMA=0: the portable kernel everywhere (to compare the two in a benchmark).
    if (const char* v = std::getenv("QUIRE_STAGE1_WGMMA"); v && std::strcmp(v, "0") == 0) return 0;
    const DeviceLimits& L = device_limits();
    if (L.sm_major != 9 || L.sm_minor != 0) return 0;  // sm_90a code runs on sm_90 only (not on sm_100 / sm_120)
    for (int stages : {4, 2})
        if (L.fits_smem(stage1_wgmma_smem_bytes(d, stages))) return stages;
#else
    (void)d;
#endif
    return 0;
}

enum class Check { unchecked, passed, failed };
std::mutex g_check_mutex;
Check g_check[16] = {};

Check& check_state() {
    static Check none = Check::failed;
    const int dev = device_limits().device;
    return dev >= 0 && dev < 16 ? g_check[dev] : none;
}

// Deterministic values in [-2, 2) as bf16 bits (a 32-bit LCG; no <random> state to share).
std::vector<uint16_t> synthetic_bf16(size_t n, uint32_t seed) {
    std::vector<uint16_t> v(n);
    uint32_t x = seed * 2654435761u + 1u;
    for (auto& e : v) {
        x = x * 1664525u + 1013904223u;
        const float f = static_cast<float>(x >> 8) / static_cast<float>(1u << 24) * 4.0f - 2.0f;
        uint32_t bits = 0;
        std::memcpy(&bits, &f, 4);
        e = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
    return v;
}

template <typename T>
struct Scratch {
    T* p = nullptr;
    explicit Scratch(size_t n) {
        if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) p = nullptr;
    }
    ~Scratch() {
        if (p) cudaFree(p);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
};

// Both prefill kernels on 40 queries at positions 9000.. of one KV head (head dim 128, several C1 and
// C2 tiles, a partial CTA): every block score must agree to a bf16 rounding step.
bool run_self_check(double& worst) {
    constexpr int64_t kTokens = 40, kPos0 = 9000, kD = 128;
    const int64_t n = kPos0 + kTokens, n1 = (n - 32) / 16 + 1, n2 = (n - 128) / 64 + 1, stride = (n - 1) / 64 + 1;
    const auto q = synthetic_bf16(static_cast<size_t>(kTokens * 16 * kD), 1), c1 = synthetic_bf16(static_cast<size_t>(n1 * kD), 2),
               c2 = synthetic_bf16(static_cast<size_t>(n2 * kD), 3);
    Scratch<uint16_t> dq(q.size()), dc1(c1.size()), dc2(c2.size());
    Scratch<float> a(static_cast<size_t>(kTokens * stride)), b(static_cast<size_t>(kTokens * stride));
    if (!dq.p || !dc1.p || !dc2.p || !a.p || !b.p) return false;
    if (cudaMemcpy(dq.p, q.data(), q.size() * 2, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(dc1.p, c1.data(), c1.size() * 2, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(dc2.p, c2.data(), c2.size() * 2, cudaMemcpyHostToDevice) != cudaSuccess)
        return false;
    if (launch_stage1_blocks_on(Stage1Path::wgmma, dq.p, dc1.p, dc2.p, kTokens, kPos0, 1, 16, kD, stride, a.p, nullptr, 0, {}, nullptr) !=
            cudaSuccess ||
        launch_stage1_blocks_on(Stage1Path::mma_sync, dq.p, dc1.p, dc2.p, kTokens, kPos0, 1, 16, kD, stride, b.p, nullptr, 0, {}, nullptr) !=
            cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    std::vector<float> ha(static_cast<size_t>(kTokens * stride)), hb(ha.size());
    if (cudaMemcpy(ha.data(), a.p, ha.size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(hb.data(), b.p, hb.size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        return false;
    worst = 0;
    for (int64_t t = 0; t < kTokens; ++t)
        for (int64_t blk = 0; blk <= (kPos0 + t) / 64; ++blk) {
            // A block with no visible C1 entry (always forced) may hold -inf or 0 depending on the CTA shape.
            const int64_t p = kPos0 + t, n1p = p + 1 < 32 ? 0 : (p + 1 - 32) / 16 + 1;
            if (std::max<int64_t>(0, 4 * blk - 1) >= n1p) continue;
            const float x = ha[static_cast<size_t>(t * stride + blk)], y = hb[static_cast<size_t>(t * stride + blk)];
            if (std::isinf(x) || std::isinf(y)) {
                if (x != y) worst = INFINITY;
                continue;
            }
            const double rel = std::fabs(double(x) - y) / std::max({std::fabs(double(x)), std::fabs(double(y)), 1e-30});
            worst = std::max(worst, std::isnan(rel) ? INFINITY : rel);
        }
    return worst <= 1.0 / 64;  // one bf16 step is 2^-8 relative: a wrong layout is far off
}

}  // namespace

bool stage1_wgmma_supported() { return wgmma_stages(128) > 0; }

int stage1_wgmma_ring(int64_t d) { return wgmma_stages(d); }

bool stage1_wgmma_self_check() {
    if (!stage1_wgmma_supported()) return false;
    std::lock_guard<std::mutex> lock(g_check_mutex);
    Check& state = check_state();
    if (state == Check::unchecked) {
        double worst = INFINITY;
        const bool ok = run_self_check(worst);
        state = ok ? Check::passed : Check::failed;
        if (!ok)
            std::fprintf(stderr,
                         "quire: warning: the Hopper (wgmma) stage-1 kernel disagrees with the mma.sync kernel (worst relative "
                         "difference %g); stage 1 uses the mma.sync kernel\n",
                         worst);
    }
    return state == Check::passed;
}

cudaError_t launch_stage1_blocks_on(Stage1Path path, const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens,
                                    int64_t pos0, int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* block_scores,
                                    float* scratch, int64_t scratch_floats, const Stage1Forced& forced, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (group < 1 || group > 16 || (16 % group) != 0) return cudaErrorInvalidValue;
    if (d != 64 && d != 128) return cudaErrorInvalidValue;
    if (stride < (pos0 + tokens - 1) / 64 + 1) return cudaErrorInvalidValue;
    if (stage1_uses_split(tokens, kv_heads, group)) {
        if (!scratch || scratch_floats < stage1_scratch_floats(tokens, pos0, kv_heads, group)) return cudaErrorInvalidValue;
        return launch_stage1_split(q, c1, c2, tokens, pos0, kv_heads, d, stride, block_scores, scratch, stream);
    }
    if (group == 16) {
        bool wgmma = path == Stage1Path::wgmma;
        if (path == Stage1Path::automatic && wgmma_stages(d) > 0) {
            // The self-check synchronises the device: never inside a stream capture (the mma.sync
            // kernel then runs until a later call outside one has checked).
            cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
            if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) cudaGetLastError();
            std::unique_lock<std::mutex> lock(g_check_mutex);
            const Check state = check_state();
            lock.unlock();
            if (state == Check::passed) wgmma = true;
            else if (state == Check::unchecked && capture == cudaStreamCaptureStatusNone) wgmma = stage1_wgmma_self_check();
        }
        if (wgmma) {
#ifdef QUIRE_STAGE1_WGMMA
            const int stages = wgmma_stages(d);
            if (stages == 0) return cudaErrorNotSupported;
            return launch_stage1_wgmma(q, c1, c2, tokens, pos0, kv_heads, d, stride, block_scores, stages, forced, stream);
#else
            return cudaErrorNotSupported;
#endif
        }
        if (!device_limits().fits_smem(mma_sync_smem_bytes(16, d))) return cudaErrorInvalidValue;
        return launch_stage1_g16(q, c1, c2, tokens, pos0, kv_heads, d, stride, block_scores, forced, stream);
    }
    if (path == Stage1Path::wgmma) return cudaErrorNotSupported;
    if (!device_limits().fits_smem(mma_sync_smem_bytes(group, d))) return cudaErrorInvalidValue;
    return launch_stage1_generic(q, c1, c2, tokens, pos0, kv_heads, group, d, stride, block_scores, stream);
}

cudaError_t launch_stage1_blocks(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0,
                                 int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* block_scores, float* scratch,
                                 int64_t scratch_floats, cudaStream_t stream, const Stage1Forced& forced) {
    return launch_stage1_blocks_on(Stage1Path::automatic, q, c1, c2, tokens, pos0, kv_heads, group, d, stride, block_scores, scratch,
                                   scratch_floats, forced, stream);
}

}  // namespace quire::kernels
