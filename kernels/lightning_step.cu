// Lightning for one token (decode, docs/model.md §4): the recurrence itself, S ← γ·S + k ⊗ v and
// o = s·(qᵀ S), in fp32 on CUDA cores. One CTA per (head, 32 value columns), one warp per 16 (d 128)
// or 8 (d 64) state rows; each thread updates its column of those rows in place and the warps'
// partial dot products are added in a fixed order. The chunked kernel (lightning.cu) pads a single
// token to a 64-token chunk of tensor-core work in 64 CTAs: ~13 µs a layer at 1M on the H200, for
// 2 MB of state read and written. Given the head norms, it applies Lightning's per-head q/k norm and
// RoPE itself (head_norm_rope.cuh) instead of a kernel of their own before it.
#include <cmath>

#include "attention_ops.h"
#include "common.cuh"
#include "head_norm_rope.cuh"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

constexpr int kColumns = 32;
constexpr int kRowGroups = 8;

// hn.q_weight set: q and k normalised per head and rotated (head_norm_rope.cuh) as they are read;
// warp 0 does the q row and warp 1 the k row of the CTA's head, with the angles of position `pos`.
template <int D>
__global__ void __launch_bounds__(kColumns* kRowGroups) lightning_step_kernel(const __nv_bfloat16* __restrict__ q,
                                                                             const __nv_bfloat16* __restrict__ k,
                                                                             const __nv_bfloat16* __restrict__ v,
                                                                             const double* __restrict__ slopes, float* __restrict__ state,
                                                                             __nv_bfloat16* __restrict__ out, const LightningHeadNorm hn, int64_t pos) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    constexpr int kRows = D / kRowGroups;
    __shared__ float qs[D], ks[D], cs[D];
    __shared__ float part[kRowGroups][kColumns];
    const int64_t h = blockIdx.x;
    const int lane = threadIdx.x & 31, group = threadIdx.x >> 5;
    const int c = blockIdx.y * kColumns + lane;
    // This thread's column of its state rows, asked for before the q/k work, which does not need it.
    float* S = state + h * D * D;
    float sv[kRows];
#pragma unroll
    for (int i = 0; i < kRows; ++i) sv[i] = S[(group * kRows + i) * D + c];
    if (hn.q_weight) {
        rope_angles(cs, D, pos, hn.theta);  // ends synchronised
        if (group < 2) {
            float x[D / 32];
            head_row_norm_rope<D / 32>((group == 0 ? q : k) + h * D, (group == 0 ? hn.q_weight : hn.k_weight), cs, hn.eps, hn.rope, lane, x);
            float* dst = group == 0 ? qs : ks;
#pragma unroll
            for (int j = 0; j < D / 32; ++j) dst[lane + 32 * j] = round_bf(x[j]);  // the bf16 row the separate kernel writes
        }
    } else {
        for (int i = threadIdx.x; i < D; i += blockDim.x) {
            qs[i] = __bfloat162float(q[h * D + i]);
            ks[i] = __bfloat162float(k[h * D + i]);
        }
    }
    const float vc = __bfloat162float(v[h * D + c]);
    const float gamma = static_cast<float>(exp(-slopes[h]));  // γ^1 as the chunked form rounds it
    __syncthreads();
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
        const int r = group * kRows + i;
        const float s = gamma * sv[i] + ks[r] * vc;
        S[r * D + c] = s;
        acc += qs[r] * s;
    }
    part[group][lane] = acc;
    __syncthreads();
    if (group == 0) {
        float o = 0.0f;
#pragma unroll
        for (int g = 0; g < kRowGroups; ++g) o += part[g][lane];
        out[h * D + c] = to_bf(o * rsqrtf(static_cast<float>(D)));
    }
}

}  // namespace

cudaError_t launch_lightning_step(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t heads, int64_t d, int64_t pos,
                                  const double* slopes, float* state, uint16_t* out, cudaStream_t stream, const LightningHeadNorm* head_norm) {
    if (heads <= 0 || heads > 0x7FFFFFFF) return cudaErrorInvalidValue;
    if (head_norm && (!head_norm->q_weight || !head_norm->k_weight)) return cudaErrorInvalidValue;
    const auto* qb = reinterpret_cast<const __nv_bfloat16*>(q);
    const auto* kb = reinterpret_cast<const __nv_bfloat16*>(k);
    const auto* vb = reinterpret_cast<const __nv_bfloat16*>(v);
    auto* ob = reinterpret_cast<__nv_bfloat16*>(out);
    const LightningHeadNorm hn = head_norm ? *head_norm : LightningHeadNorm{};  // q_weight null: none
    if (d == 64)
        return launch_pdl(lightning_step_kernel<64>, dim3(static_cast<unsigned>(heads), 64 / kColumns), kColumns * kRowGroups, 0, stream, qb, kb, vb,
                          slopes, state, ob, hn, pos);
    if (d == 128)
        return launch_pdl(lightning_step_kernel<128>, dim3(static_cast<unsigned>(heads), 128 / kColumns), kColumns * kRowGroups, 0, stream, qb, kb,
                          vb, slopes, state, ob, hn, pos);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
