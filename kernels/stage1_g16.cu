// Stage 1 + pooling for GQA groups of 16 (the 9B model's shape), prefill path: two queries per warp
// (two m16 MMA tiles sharing every B fragment read from shared memory, which halves the
// shared-memory traffic that bounds the one-query-per-warp form), compressed keys in 32-key halves
// to keep the accumulators in registers. Same math as stage1.cu's generic kernel: coarse pass for
// each head's max and sum of 2^x, fine pass summing 2^(x - m) / z over the group's heads, bf16
// rounding, max-pooling over [4b-1, 4b+3].
#include <cfloat>

#include "attention_ops.h"
#include "stage1_tile.cuh"

namespace quire::kernels {

namespace {

#ifndef QUIRE_STAGE1_CTAS_PER_SM
#define QUIRE_STAGE1_CTAS_PER_SM 2  // 128 registers, a few spilled: 16 warps per SM beat 8 (stage 1 at 1M: 14.1 -> 12.9 s, H100)
#endif
constexpr int kWarps = 8;
constexpr int kQueries = 2;  // per warp
constexpr int kPerCta = kWarps * kQueries;
constexpr int kPool = kStage1Tile + 4;  // per query: [0] = last score of the previous tile, [1..64] this tile

template <int D>
__global__ void __launch_bounds__(kWarps * 32, QUIRE_STAGE1_CTAS_PER_SM) stage1_g16_kernel(const __nv_bfloat16* __restrict__ q, const RowSource c1,
                                                                    const RowSource c2, int64_t tokens, int64_t pos0,
                                                                    int64_t kv_heads, int64_t stride, float* __restrict__ block_scores,
                                                                    Stage1Forced forced) {
    constexpr int kTile = kStage1Tile;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16* tiles = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [2][64][D]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* pool = reinterpret_cast<float*>(tiles + 2 * kTile * D) + warp * kQueries * kPool;
    const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kPerCta, g = blockIdx.y;
    const int64_t t_end = min64(tokens, t0 + kPerCta);
    int64_t n1_max = visible_entries(pos0 + t_end, 32, 16);
    const int64_t n2_max = visible_entries(pos0 + t_end, 128, 64);
    if (forced.local_blocks >= 0) {
        // Forced blocks need no score (as in stage1_wgmma.cu): stop the fine pass after the last
        // block top-k chooses among; a CTA whose last query takes every block has nothing to do.
        const int64_t qb_last = (pos0 + t_end - 1) / 64, b_last = qb_last - forced.local_blocks - 1;
        if (qb_last + 1 <= forced.topk || b_last < forced.init_blocks) return;
        n1_max = min64(n1_max, 4 * b_last + 4);
    }
    const int64_t tiles1 = (n1_max + kTile - 1) / kTile;  // fine tiles (their last one carries into the blocks after)
    const int64_t heads = kv_heads * 16;
    const int row0 = lane >> 2, row1 = row0 + 8;

    int64_t tq[kQueries], n1q[kQueries], n2q[kQueries];
    bool ok[kQueries];
    uint32_t qa[kQueries][D / 16][4];
#pragma unroll
    for (int j = 0; j < kQueries; ++j) {
        tq[j] = t0 + warp * kQueries + j;
        ok[j] = tq[j] < t_end;
        n1q[j] = visible_entries(pos0 + tq[j] + 1, 32, 16);
        n2q[j] = visible_entries(pos0 + tq[j] + 1, 128, 64);
        const __nv_bfloat16* base = q + (tq[j] * heads + g * 16) * D;
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks) {
            const int col = ks * 16 + 2 * (lane & 3);
            qa[j][ks][0] = ok[j] ? *reinterpret_cast<const uint32_t*>(base + row0 * D + col) : 0u;
            qa[j][ks][1] = ok[j] ? *reinterpret_cast<const uint32_t*>(base + row1 * D + col) : 0u;
            qa[j][ks][2] = ok[j] ? *reinterpret_cast<const uint32_t*>(base + row0 * D + col + 8) : 0u;
            qa[j][ks][3] = ok[j] ? *reinterpret_cast<const uint32_t*>(base + row1 * D + col + 8) : 0u;
        }
    }
    if (lane < kQueries) pool[lane * kPool] = -INFINITY;
    const float scale2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;
    float m[kQueries][2], z[kQueries][2], iz[kQueries][2];
#pragma unroll
    for (int j = 0; j < kQueries; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            m[j][h] = -INFINITY;
            z[j][h] = iz[j][h] = 0.0f;
        }

    stage1_stream_tiles<D, kWarps * 32>(tiles, c1, c2, n1_max, n2_max, kv_heads, g, [&](bool coarse, int64_t e0, const __nv_bfloat16* tile) {
        if (!coarse && e0 == 0)
#pragma unroll
            for (int j = 0; j < kQueries; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h) iz[j][h] = (m[j][h] == -INFINITY || z[j][h] <= 0.0f) ? 0.0f : 1.0f / z[j][h];
        // Per query, how many of the tile's 64 entries it sees (32-bit compares in the epilogues).
        int lim[kQueries];
#pragma unroll
        for (int j = 0; j < kQueries; ++j) {
            const int64_t visible = coarse ? n2q[j] : (iz[j][0] > 0.0f ? n1q[j] : 0);
            lim[j] = ok[j] ? static_cast<int>(max64(0, min64(kTile, visible - e0))) : 0;
        }
#pragma unroll
        for (int hk = 0; hk < 2; ++hk) {
            float s[kQueries][4][4];
#pragma unroll
            for (int j = 0; j < kQueries; ++j)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) s[j][nt][0] = s[j][nt][1] = s[j][nt][2] = s[j][nt][3] = 0.0f;
#pragma unroll
            for (int kp = 0; kp < D / 32; ++kp)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    uint32_t r[4];
                    ldmatrix_x4(r, tile + swz((4 * hk + nt) * 8 + (lane & 7), kp * 4 + (lane >> 3), D / 8));
#pragma unroll
                    for (int j = 0; j < kQueries; ++j) {
                        mma_bf16(s[j][nt], qa[j][2 * kp], r[0], r[1]);
                        mma_bf16(s[j][nt], qa[j][2 * kp + 1], r[2], r[3]);
                    }
                }
            if (coarse) {
#pragma unroll
                for (int j = 0; j < kQueries; ++j) stage1_coarse_update<4>(s[j], 32 * hk, lim[j], lane, scale2, m[j], z[j]);
            } else {
                const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4;
#pragma unroll
                for (int j = 0; j < kQueries; ++j) {
                    float x[8];
#pragma unroll
                    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            const int col = (4 * hk + nt) * 8 + 2 * (lane & 3) + e;
                            const bool vis = col < lim[j];
                            x[2 * nt + e] = vis ? fast_exp2(scale2 * s[j][nt][e] - m[j][0]) * iz[j][0] +
                                                      fast_exp2(scale2 * s[j][nt][2 + e] - m[j][1]) * iz[j][1]
                                                : 0.0f;
                        }
                    // Sum over the 16 heads (lane bits 2..4): lane ends with x index b2 + 2 b3 + 4 b4.
                    float y[4], w[2];
#pragma unroll
                    for (int i = 0; i < 4; ++i) y[i] = (b4 ? x[i + 4] : x[i]) + __shfl_xor_sync(0xffffffffu, b4 ? x[i] : x[i + 4], 16);
#pragma unroll
                    for (int i = 0; i < 2; ++i) w[i] = (b3 ? y[i + 2] : y[i]) + __shfl_xor_sync(0xffffffffu, b3 ? y[i] : y[i + 2], 8);
                    const float v = (b2 ? w[1] : w[0]) + __shfl_xor_sync(0xffffffffu, b2 ? w[0] : w[1], 4);
                    const int nt = (b3 ? 1 : 0) + (b4 ? 2 : 0), e = b2 ? 1 : 0;
                    pool[j * kPool + 1 + 32 * hk + nt * 8 + 2 * (lane & 3) + e] = round_bf(v);
                }
            }
        }
        if (!coarse) {
            __syncwarp();
            const int j = lane / 16, kb = lane % 16;  // 2 queries x 16 blocks: one per lane
            const int64_t b = e0 / 4 + kb, t = j ? tq[1] : tq[0];
            if ((j ? ok[1] : ok[0]) && b <= (pos0 + t) / 64) {
                const float* sc = pool + j * kPool + 4 * kb;
                block_scores[(t * kv_heads + g) * stride + b] = fmaxf(fmaxf(fmaxf(sc[0], sc[1]), fmaxf(sc[2], sc[3])), sc[4]);
            }
            __syncwarp();
            if (lane < kQueries) pool[lane * kPool] = pool[lane * kPool + kTile];
            __syncwarp();
        }
    });
    // Blocks past the last tile: the first still sees the carried score; later ones see nothing.
    if (lane < kQueries) {
        const int j = lane;
        const int64_t t = t0 + warp * kQueries + j;
        if (t < t_end) {
            const int64_t qb = (pos0 + t) / 64;
            for (int64_t b = tiles1 * 16; b <= qb; ++b)
                block_scores[(t * kv_heads + g) * stride + b] = b == tiles1 * 16 ? pool[j * kPool] : -INFINITY;
        }
    }
}

template <int D>
cudaError_t launch_g16(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                       int64_t stride, float* block_scores, const Stage1Forced& forced, cudaStream_t stream) {
    const int64_t ctas = (tokens + kPerCta - 1) / kPerCta;
    const size_t smem = sizeof(__nv_bfloat16) * 2 * kStage1Tile * D + sizeof(float) * kWarps * kQueries * kPool;
    if (ctas > 0x7FFFFFFF || kv_heads > 65535) return cudaErrorInvalidValue;
    auto kernel = stage1_g16_kernel<D>;
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)); e != cudaSuccess)
        return e;
    kernel<<<dim3(static_cast<unsigned>(ctas), static_cast<unsigned>(kv_heads)), kWarps * 32, smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), c1, c2,
        tokens, pos0, kv_heads, stride, block_scores, forced);
    return cudaGetLastError();
}

}  // namespace

cudaError_t launch_stage1_g16(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                              int64_t d, int64_t stride, float* block_scores, const Stage1Forced& forced, cudaStream_t stream) {
    if (d == 64) return launch_g16<64>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream);
    if (d == 128) return launch_g16<128>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
