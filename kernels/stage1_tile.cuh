#pragma once
// Pieces shared by the fused stage-1 kernel (prefill) and the split one (decode): visibility of
// compressed keys, and the 16 x 64 score tile of one warp's query rows against 64 compressed keys
// held in shared memory (swizzled rows of D bf16).

#include "common.cuh"
#include "mma.cuh"
#include "row_source.h"

namespace quire::kernels {

constexpr int kStage1Tile = 64;

// Compressed entries (window `kernel`, step `stride`) complete among the first n keys.
__device__ __forceinline__ int64_t visible_entries(int64_t n, int64_t kernel, int64_t stride) {
    return n < kernel ? 0 : (n - kernel) / stride + 1;
}

// s[nt][e] (C layout) = q_row . key for the tile's 64 keys; qa holds the rows as A fragments.
template <int D>
__device__ __forceinline__ void stage1_tile_scores(const uint32_t (&qa)[D / 16][4], const __nv_bfloat16* tile, int lane, float (&s)[8][4]) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kp = 0; kp < D / 32; ++kp)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            uint32_t r[4];
            ldmatrix_x4(r, tile + swz(nt * 8 + (lane & 7), kp * 4 + (lane >> 3), D / 8));
            mma_bf16(s[nt], qa[2 * kp], r[0], r[1]);
            mma_bf16(s[nt], qa[2 * kp + 1], r[2], r[3]);
        }
}

// The coarse pass on one query's score tile in the C layout (rows lane/4 and lane/4 + 8 = h 0, 1;
// column col0 + 8 i + 2 (lane % 4) + e): columns >= lim are invisible; the rest, scaled to log2
// units, update each row's running max m and sum z of 2^x (rows reduced over the lane quad).
template <int NT>
__device__ __forceinline__ void stage1_coarse_update(float (&s)[NT][4], int col0, int lim, int lane, float scale2, float (&m)[2], float (&z)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < NT; ++i)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float& x = s[i][2 * h + e];
                x = col0 + 8 * i + 2 * (lane & 3) + e < lim ? scale2 * x : -INFINITY;
                mx = fmaxf(mx, x);
            }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m[h], mx);
        float sum = 0.0f;
        if (mn != -INFINITY) {
#pragma unroll
            for (int i = 0; i < NT; ++i) sum += fast_exp2(s[i][2 * h] - mn) + fast_exp2(s[i][2 * h + 1] - mn);
            z[h] = m[h] == -INFINITY ? 0.0f : z[h] * fast_exp2(m[h] - mn);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        if (mn != -INFINITY) z[h] += sum;
        m[h] = mn;
    }
}

// Sum of v over the 8 lanes that share lane % 4, scattered: lane L ends with the sums of entries
// 2 (L >> 2) and 2 (L >> 2) + 1, i.e. (entry 2 i + e = column 8 i + 2 (L % 4) + e) columns 2L, 2L + 1.
__device__ __forceinline__ void stage1_group_sum_scatter(const float (&v)[16], int lane, float& c0, float& c1) {
    const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4;
    float y[8], w[4];
#pragma unroll
    for (int i = 0; i < 8; ++i) y[i] = (b4 ? v[i + 8] : v[i]) + __shfl_xor_sync(0xffffffffu, b4 ? v[i] : v[i + 8], 16);
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = (b3 ? y[i + 4] : y[i]) + __shfl_xor_sync(0xffffffffu, b3 ? y[i] : y[i + 4], 8);
    c0 = (b2 ? w[2] : w[0]) + __shfl_xor_sync(0xffffffffu, b2 ? w[0] : w[2], 4);
    c1 = (b2 ? w[3] : w[1]) + __shfl_xor_sync(0xffffffffu, b2 ? w[1] : w[3], 4);
}

// Asynchronous load of compressed entries first .. first + 63 of KV head g (zero past count) by
// the CTA's kThreads threads.
template <int D, int kThreads>
__device__ __forceinline__ void stage1_load_tile(__nv_bfloat16* dst, const RowSource& src, int64_t first, int64_t count,
                                                 int64_t kv_heads, int64_t g) {
    constexpr int kChunks = D / 8, kRowsPerPass = kThreads / kChunks;
    const int64_t width = kv_heads * D;
    const int c = threadIdx.x % kChunks, r0 = threadIdx.x / kChunks;
    if (kRowsPerPass % 8 == 0 && first + kStage1Tile <= count && !(src.split > first && src.split < first + kStage1Tile)) {
        // The common case: the whole tile in one buffer; rows r0, r0 + kRowsPerPass, ... share the swizzle phase.
        const int soff = swz(r0, c, kChunks);
        const uint16_t* p = src.row(first + r0, width) + g * D + c * 8;
#pragma unroll
        for (int i = 0; i < kStage1Tile / kRowsPerPass; ++i) cp_async_16(dst + soff + i * kRowsPerPass * D, p + i * kRowsPerPass * width, true);
    } else {
        for (int i = 0; i < kStage1Tile / kRowsPerPass; ++i) {
            const int r = r0 + i * kRowsPerPass;
            const bool valid = first + r < count;
            cp_async_16(dst + swz(r, c, kChunks), src.row(valid ? first + r : 0, width) + g * D + c * 8, valid);
        }
    }
    cp_async_commit();
}

// The prefill kernels' walk: the coarse tiles (C2, entries < n2) then the fine ones (C1, entries
// < n1) through a two-stage cp.async ring the CTA shares. visit(coarse, first_entry, tile) runs for
// each tile once it is in shared memory; the CTA synchronises before its stage is reloaded.
template <int D, int kThreads, typename Visit>
__device__ __forceinline__ void stage1_stream_tiles(__nv_bfloat16* tiles, const RowSource& c1, const RowSource& c2, int64_t n1, int64_t n2,
                                                    int64_t kv_heads, int64_t g, Visit&& visit) {
    const int64_t tiles2 = (n2 + kStage1Tile - 1) / kStage1Tile, tiles1 = (n1 + kStage1Tile - 1) / kStage1Tile;
    const int64_t total = tiles2 + tiles1;
    auto issue = [&](int64_t u) {
        __nv_bfloat16* dst = tiles + (u & 1) * kStage1Tile * D;
        if (u < tiles2) stage1_load_tile<D, kThreads>(dst, c2, u * kStage1Tile, n2, kv_heads, g);
        else stage1_load_tile<D, kThreads>(dst, c1, (u - tiles2) * kStage1Tile, n1, kv_heads, g);
    };
    if (total > 0) issue(0);
    for (int64_t u = 0; u < total; ++u) {
        if (u + 1 < total) {
            issue(u + 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bool coarse = u < tiles2;
        visit(coarse, (coarse ? u : u - tiles2) * kStage1Tile, tiles + (u & 1) * kStage1Tile * D);
        __syncthreads();  // the stage is free for the load after next
    }
}

}  // namespace quire::kernels
