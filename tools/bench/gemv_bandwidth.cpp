#include "gemv_bandwidth.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <vector>

#include "gemv.h"
#include "gptq_gemv.h"
#include "gptq_gemv_mma.h"
#include "random_fill.h"

namespace quire::bench {

namespace {

// Device memory freed on scope exit.
struct Block {
    void* p = nullptr;
    explicit Block(size_t bytes) {
        if (cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
    }
    ~Block() { cudaFree(p); }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;
};

// Mean seconds per call of fn(i) for i = 0 .. iters - 1 (after one warm-up call).
double seconds(const std::function<void(int)>& fn, int iters) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    fn(0);
    cudaEventRecord(a);
    for (int i = 0; i < iters; ++i) fn(i);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return static_cast<double>(ms) / 1000.0 / iters;
}

constexpr int64_t kRotation = int64_t{512} << 20;  // bytes cycled through: far past the L2

// One GPTQ layer's bytes (qweight, qzeros, scales; group size 128) and their view at `base`.
int64_t gptq_bytes(int64_t in, int64_t out, int bits) {
    const int64_t pw = 32 / bits, groups = (in + 127) / 128;
    return in / pw * out * 4 + groups * out / pw * 4 + groups * out * 2;
}
kernels::GptqView gptq_at(char* base, int64_t in, int64_t out, int bits) {
    const int64_t pw = 32 / bits, groups = (in + 127) / 128;
    kernels::GptqView v;
    v.qweight = reinterpret_cast<const int32_t*>(base);
    v.qzeros = reinterpret_cast<const int32_t*>(base + in / pw * out * 4);
    v.scales = reinterpret_cast<const __half*>(base + in / pw * out * 4 + groups * out / pw * 4);
    v.in = in;
    v.out = out;
    v.bits = bits;
    v.group_size = 128;
    v.tiled = out % kernels::kGptqTileCols == 0;  // as the engine holds it (random words: the layout only moves them)
    return v;
}

}  // namespace

void print_gemv_bandwidth(const ModelConfig& c, double copy_bandwidth) {
    struct Shape {
        const char* name;
        int64_t in, out;
    };
    const Shape shapes[] = {{"hidden x hidden", c.hidden_size, c.hidden_size},
                            {"intermediate x hidden", c.hidden_size, c.intermediate_size},
                            {"hidden x intermediate", c.intermediate_size, c.hidden_size}};
    std::printf("decode GEMV (1 token, weights cycled through %lld MB): time and bytes read per second, %% of copy bandwidth\n",
                static_cast<long long>(kRotation >> 20));
    std::printf("| layer [out x in] | bf16 us | bf16 GB/s | INT8 us | INT8 GB/s | INT4 us | INT4 GB/s (%% of copy) |\n|---|---|---|---|---|---|---|\n");
    for (const Shape& s : shapes) {
        Block x(static_cast<size_t>(s.in) * 2), y(static_cast<size_t>(s.out) * 2), pool(static_cast<size_t>(kRotation) + 256);
        if (!x.p || !y.p || !pool.p) {
            std::printf("| %s | out of GPU memory |\n", s.name);
            return;
        }
        // Random bits everywhere: timing does not depend on the values.
        kernels::launch_fill_random_bf16(static_cast<uint16_t*>(pool.p), kRotation / 2, 5, 0.02f, nullptr);
        kernels::launch_fill_random_bf16(static_cast<uint16_t*>(x.p), s.in, 6, 1.0f, nullptr);
        // The engine's split scratch for the 4-bit kernel (tickets start at zero).
        Block partials(static_cast<size_t>(kernels::gptq_gemv_partial_floats(s.out)) * 4), tickets(static_cast<size_t>(kernels::gptq_gemv_ticket_count(s.out)) * 4);
        cudaMemset(tickets.p, 0, static_cast<size_t>(kernels::gptq_gemv_ticket_count(s.out)) * 4);
        const kernels::GptqGemvScratch scratch{static_cast<float*>(partials.p), kernels::gptq_gemv_partial_floats(s.out),
                                               static_cast<uint32_t*>(tickets.p), kernels::gptq_gemv_ticket_count(s.out)};
        auto* xs = static_cast<const uint16_t*>(x.p);
        auto* ys = static_cast<uint16_t*>(y.p);
        char* base = static_cast<char*>(pool.p);
        const int64_t bf_bytes = s.in * s.out * 2, bf_n = std::max<int64_t>(1, kRotation / bf_bytes);
        const double t_bf = seconds([&](int i) {
            kernels::launch_gemv_bf16(reinterpret_cast<const uint16_t*>(base + (i % bf_n) * bf_bytes), s.out, s.in, xs, 1, ys, nullptr);
        }, static_cast<int>(2 * bf_n));
        double t[2] = {0, 0}, bw[2] = {0, 0};
        for (int b = 0; b < 2; ++b) {
            const int bits = b == 0 ? 8 : 4;
            const int64_t bytes = (gptq_bytes(s.in, s.out, bits) + 255) / 256 * 256, n = std::max<int64_t>(1, kRotation / bytes);
            t[b] = seconds([&](int i) {
                kernels::launch_gptq_gemv(gptq_at(base + (i % n) * bytes, s.in, s.out, bits), xs, 1, ys, nullptr, kernels::GptqGemvLoop::automatic,
                                          &scratch);
            }, static_cast<int>(2 * n));
            bw[b] = static_cast<double>(gptq_bytes(s.in, s.out, bits)) / t[b];
        }
        if (cudaGetLastError() != cudaSuccess) {
            std::printf("| %s | a GEMV failed |\n", s.name);
            return;
        }
        std::printf("| %s [%lld x %lld] | %.1f | %.0f | %.1f | %.0f | %.1f | %.0f (%.0f%%) |\n", s.name, static_cast<long long>(s.out),
                    static_cast<long long>(s.in), t_bf * 1e6, static_cast<double>(bf_bytes) / t_bf / 1e9, t[0] * 1e6, bw[0] / 1e9,
                    t[1] * 1e6, bw[1] / 1e9, 100.0 * bw[1] / copy_bandwidth);
    }
}

}  // namespace quire::bench
