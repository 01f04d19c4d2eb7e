#pragma once
// Lightning's per-head q/k RMSNorm and RoPE of one head row (docs/model.md §2.5, §2.3), shared by
// head_norm_rope_kernel (norm_ops.cu), which writes the rows back, and the one-token Lightning
// kernel (lightning_step.cu), which applies them to the rows it reads instead: the same arithmetic
// in the same order, so both give the same bits.

#include "common.cuh"

namespace quire::kernels {

// cs[i], cs[dim/2 + i] = cos, sin of position p times RoPE frequency i, computed by the block (fp32
// angles, the CPU engine's formulas); ends with the block synchronised.
__device__ inline void rope_angles(float* cs, int64_t dim, int64_t p, float theta) {
    const int64_t half = dim / 2;
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
        const float inv_freq = 1.0f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(dim));
        const float angle = static_cast<float>(p) * inv_freq;
        cs[i] = cosf(angle);
        cs[half + i] = sinf(angle);
    }
    __syncthreads();
}

// One head row of 32 * J elements by one warp: lane L holds the elements L + 32 j (so each RoPE pair
// (i, i + dim/2) sits in one lane), normalised with weights w, then rotated by the angles in cs when
// `rope`. x gets the results before their final rounding to bf16.
template <int J>
__device__ __forceinline__ void head_row_norm_rope(const __nv_bfloat16* v, const float* w, const float* cs, float eps, bool rope, int lane,
                                                   float (&x)[J]) {
    constexpr int dim = 32 * J, half = dim / 2;
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < J; ++j) {
        x[j] = bf(v[lane + 32 * j]);
        ss += x[j] * x[j];
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
#pragma unroll
    for (int j = 0; j < J; ++j) x[j] = round_bf(round_bf(x[j] * inv) * w[lane + 32 * j]);
    if (rope) {
#pragma unroll
        for (int j = 0; j < J / 2; ++j) {
            const int i = lane + 32 * j;
            const float c = cs[i], s = cs[half + i], a = x[j], b = x[j + J / 2];
            x[j] = a * c - b * s;
            x[j + J / 2] = b * c + a * s;
        }
    }
}

}  // namespace quire::kernels
