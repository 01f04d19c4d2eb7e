#pragma once
// One warp's share of the bf16 decode GEMV (gemv.h): the dot products of one weight row with T token
// rows, lane l reading the row's 16-byte chunks l, l + 32, ... and adding them in that order, then a
// butterfly sum over the warp. gemv.cu's kernel and the 4-bit GEMV's bf16 passenger
// (gptq_gemv_mma.h) both use it, so their results agree bit for bit.
#include <cuda_bf16.h>

#include <cstdint>

#include "common.cuh"

namespace quire::kernels {

// Chunks of its row a lane reads before pdl_wait(): with programmatic dependent launch
// (pdl_launch.h) the weights, which no kernel writes, stream in while the kernel before ends.
constexpr int kGemvEarlyChunks = 4;

struct GemvRowEarly {
    uint4 w[kGemvEarlyChunks];
};

// The first chunks of `row` (zero past its end, or for an inactive warp); streamed once: not kept in L2.
__device__ __forceinline__ GemvRowEarly gemv_row_early(const uint4* row, int64_t chunks, int lane, bool active) {
    GemvRowEarly e;
#pragma unroll
    for (int u = 0; u < kGemvEarlyChunks; ++u) {
        const int64_t c = lane + 32 * u;
        e.w[u] = active && c < chunks ? __ldcs(row + c) : make_uint4(0, 0, 0, 0);
    }
    return e;
}

// sum[t] = row · x[t] (x: [T, chunks] chunks of 8 bf16), the same value in every lane.
template <int T>
__device__ __forceinline__ void gemv_row_sums(const uint4* row, int64_t chunks, const uint4* x, int lane, const GemvRowEarly& early,
                                              float (&sum)[T]) {
#pragma unroll
    for (int t = 0; t < T; ++t) sum[t] = 0.0f;
    auto add = [&](const uint4& wv, int64_t c) {
        const __nv_bfloat16* we = reinterpret_cast<const __nv_bfloat16*>(&wv);
#pragma unroll
        for (int t = 0; t < T; ++t) {
            const uint4 xv = __ldg(x + t * chunks + c);
            const __nv_bfloat16* xe = reinterpret_cast<const __nv_bfloat16*>(&xv);
#pragma unroll
            for (int j = 0; j < 8; ++j) sum[t] = fmaf(bf(we[j]), bf(xe[j]), sum[t]);
        }
    };
#pragma unroll
    for (int u = 0; u < kGemvEarlyChunks; ++u)
        if (lane + 32 * u < chunks) add(early.w[u], lane + 32 * u);
#pragma unroll 4
    for (int64_t c = lane + 32 * kGemvEarlyChunks; c < chunks; c += 32) add(__ldcs(row + c), c);
#pragma unroll
    for (int t = 0; t < T; ++t)
        for (int o = 16; o > 0; o >>= 1) sum[t] += __shfl_xor_sync(0xffffffffu, sum[t], o);
}

}  // namespace quire::kernels
