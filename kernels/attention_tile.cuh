#pragma once
// The per-warp pieces of flash-style attention on tensor cores, shared by warp_attention.cu (a
// query's 16 heads per warp) and block_attention.cu (16 / G queries per warp): one m16 tile of rows
// against NT * 8 keys held in shared memory (swizzled rows of D bf16).

#include <cfloat>

#include "common.cuh"
#include "mma.cuh"

namespace quire::kernels {

// s (C layout) = q_rows . keys for the NT * 8 keys of the tile.
template <int D, int NT>
__device__ __forceinline__ void attention_scores(const uint32_t (&qa)[D / 16][4], const __nv_bfloat16* ks, int lane, float (&s)[NT][4]) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kp = 0; kp < D / 32; ++kp)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            uint32_t r[4];
            ldmatrix_x4(r, ks + swz(nt * 8 + (lane & 7), kp * 4 + (lane >> 3), D / 8));
            mma_bf16(s[nt], qa[2 * kp], r[0], r[1]);
            mma_bf16(s[nt], qa[2 * kp + 1], r[2], r[3]);
        }
}

// Online softmax over already scaled and masked scores (masked = -inf): updates each row half's
// running max m and sum l, rescales acc, and leaves the probabilities in s.
template <int D, int NT>
__device__ __forceinline__ void softmax_update(float (&s)[NT][4], float (&m)[2], float (&l)[2], float (&acc)[D / 8][4]) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
    float corr[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        const float mn = fmaxf(m[h], mx[h]);
        corr[h] = mn == -INFINITY ? 1.0f : __expf(m[h] - mn);
        m[h] = mn;
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int h = e >> 1;
            s[nt][e] = m[h] == -INFINITY ? 0.0f : __expf(s[nt][e] - m[h]);
            sum[h] += s[nt][e];
        }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 1);
        sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 2);
        l[h] = l[h] * corr[h] + sum[h];
    }
#pragma unroll
    for (auto& a : acc) {
        a[0] *= corr[0];
        a[1] *= corr[0];
        a[2] *= corr[1];
        a[3] *= corr[1];
    }
}

// acc += P . V for the tile's NT * 8 keys: P (bf16, from the C layout of s), V rows in shared memory.
template <int D, int NT>
__device__ __forceinline__ void accumulate_pv(const float (&s)[NT][4], const __nv_bfloat16* vs, int lane, float (&acc)[D / 8][4]) {
#pragma unroll
    for (int kk = 0; kk < NT / 2; ++kk) {
        const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dn = 0; dn < D / 16; ++dn) {
            uint32_t r[4];
            ldmatrix_x4_trans(r, vs + swz(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dn * 2 + (lane >> 4), D / 8));
            mma_bf16(acc[2 * dn], pa, r[0], r[1]);
            mma_bf16(acc[2 * dn + 1], pa, r[2], r[3]);
        }
    }
}

// A fragments of 16 consecutive rows of D bf16 (a query's group of heads) starting at rows.
template <int D>
__device__ __forceinline__ void load_group_rows(const __nv_bfloat16* rows, int lane, uint32_t (&qa)[D / 16][4]) {
    const int row0 = lane >> 2, row1 = row0 + 8;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
        const int col = ks * 16 + 2 * (lane & 3);
        qa[ks][0] = *reinterpret_cast<const uint32_t*>(rows + row0 * D + col);
        qa[ks][1] = *reinterpret_cast<const uint32_t*>(rows + row1 * D + col);
        qa[ks][2] = *reinterpret_cast<const uint32_t*>(rows + row0 * D + col + 8);
        qa[ks][3] = *reinterpret_cast<const uint32_t*>(rows + row1 * D + col + 8);
    }
}

}  // namespace quire::kernels
