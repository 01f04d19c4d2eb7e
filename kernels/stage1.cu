// InfLLM-v2 stage 1 with block pooling (docs/model.md §3.3-3.4) on tensor cores. Rows of the m16 MMA
// tile are the G heads of a KV group (16 / G queries per warp); a CTA of 8 warps streams the
// compressed keys once for all its queries: first C2 (online max and sum of exponentials per head),
// then C1 (probabilities summed over the group's heads, rounded to bf16, max-pooled over
// [4b-1, 4b+3] into block scores as each tile completes). Only block scores reach global memory.
#include <cfloat>

#include "attention_ops.h"
#include "common.cuh"
#include "mma.cuh"
#include "stage1_tile.cuh"

namespace quire::kernels {

namespace {

constexpr int kTile = kStage1Tile;
constexpr int kWarps = 8;
constexpr int kPool = kTile + 4;  // per query: [0] = last score of the previous tile, [1..64] this tile

__device__ __forceinline__ int64_t visible(int64_t n, int64_t kernel, int64_t stride) { return visible_entries(n, kernel, stride); }

template <int D>
__global__ void __launch_bounds__(kWarps * 32, 1) stage1_kernel(const __nv_bfloat16* __restrict__ q, const RowSource c1,
                                                             const RowSource c2, int64_t tokens, int64_t pos0,
                                                             int64_t kv_heads, int G, int64_t stride, float* __restrict__ block_scores) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16* tiles = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [2][64][D]
    const int qpw = 16 / G, qpc = kWarps * qpw;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* pool = reinterpret_cast<float*>(tiles + 2 * kTile * D) + warp * qpw * kPool;
    const int64_t t0 = static_cast<int64_t>(blockIdx.x) * qpc, g = blockIdx.y;
    const int64_t t_end = min64(tokens, t0 + qpc);
    const int64_t n1_max = visible(pos0 + t_end, 32, 16), n2_max = visible(pos0 + t_end, 128, 64);
    const int64_t tiles1 = (n1_max + kTile - 1) / kTile;  // fine tiles (their last one carries into the blocks after)
    const int64_t heads = kv_heads * G;

    const int row0 = lane >> 2, row1 = row0 + 8;
    const int qi0 = warp * qpw + row0 / G, qi1 = warp * qpw + row1 / G;
    const int64_t tq0 = t0 + qi0, tq1 = t0 + qi1;
    const bool ok0 = tq0 < t_end, ok1 = tq1 < t_end;
    const int64_t n1q[2] = {visible(pos0 + tq0 + 1, 32, 16), visible(pos0 + tq1 + 1, 32, 16)};
    const int64_t n2q[2] = {visible(pos0 + tq0 + 1, 128, 64), visible(pos0 + tq1 + 1, 128, 64)};
    uint32_t qa[D / 16][4];
    #pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
        const int col = ks * 16 + 2 * (lane & 3);
        auto at = [&](int64_t t, bool ok, int row, int c) -> uint32_t {
            return ok ? *reinterpret_cast<const uint32_t*>(q + (t * heads + g * G + row % G) * D + c) : 0u;
        };
        qa[ks][0] = at(tq0, ok0, row0, col);
        qa[ks][1] = at(tq1, ok1, row1, col);
        qa[ks][2] = at(tq0, ok0, row0, col + 8);
        qa[ks][3] = at(tq1, ok1, row1, col + 8);
    }
    for (int i = lane; i < qpw; i += 32) pool[i * kPool] = -INFINITY;
    const float scale2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;  // softmax scale, in log2 units
    float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.0f, 0.0f};
    float iz[2] = {0.0f, 0.0f};  // 1 / z once the coarse pass is done (0 for a row without coarse keys)

    stage1_stream_tiles<D, kWarps * 32>(tiles, c1, c2, n1_max, n2_max, kv_heads, g, [&](bool coarse, int64_t e0, const __nv_bfloat16* cs) {
        if (!coarse && e0 == 0)
            for (int h = 0; h < 2; ++h) iz[h] = (m[h] == -INFINITY || z[h] <= 0.0f) ? 0.0f : 1.0f / z[h];
        float s[8][4];
        stage1_tile_scores<D>(qa, cs, lane, s);
        if (coarse) {
            // Coarse keys: running max and sum of 2^x per row (= per head), x in log2 units.
            const int64_t j0 = e0;
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e >> 1;
                    const int64_t j = j0 + nt * 8 + 2 * (lane & 3) + (e & 1);
                    s[nt][e] = ((h ? ok1 : ok0) && j < n2q[h]) ? scale2 * s[nt][e] : -INFINITY;
                    mx[h] = fmaxf(mx[h], s[nt][e]);
                }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
                const float mn = fmaxf(m[h], mx[h]);
                float sum = 0.0f;
                if (mn != -INFINITY) {
#pragma unroll
                    for (int nt = 0; nt < 8; ++nt) sum += fast_exp2(s[nt][2 * h] - mn) + fast_exp2(s[nt][2 * h + 1] - mn);
                    z[h] = (m[h] == -INFINITY ? 0.0f : z[h] * fast_exp2(m[h] - mn));
                }
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                if (mn != -INFINITY) z[h] += sum;
                m[h] = mn;
            }
        } else {
            // Fine keys: sums over each query's rows (shuffles within the query's lanes), pooled through smem.
            const int64_t i0 = e0;
            for (int nt = 0; nt < 8; ++nt)
                for (int e = 0; e < 2; ++e) {
                    const int64_t i = i0 + nt * 8 + 2 * (lane & 3) + e;
                    float v0 = (ok0 && i < n1q[0] && iz[0] > 0.0f) ? fast_exp2(scale2 * s[nt][e] - m[0]) * iz[0] : 0.0f;
                    float v1 = (ok1 && i < n1q[1] && iz[1] > 0.0f) ? fast_exp2(scale2 * s[nt][2 + e] - m[1]) * iz[1] : 0.0f;
                    for (int o = 4; o < 4 * G && o < 32; o <<= 1) {
                        v0 += __shfl_xor_sync(0xffffffffu, v0, o);
                        v1 += __shfl_xor_sync(0xffffffffu, v1, o);
                    }
                    const int col = 1 + nt * 8 + 2 * (lane & 3) + e;
                    if (row0 % G == 0) pool[(qi0 - warp * qpw) * kPool + col] = round_bf(v0);
                    if (row1 % G == 0) pool[(qi1 - warp * qpw) * kPool + col] = round_bf(v1);
                }
            __syncwarp();
            for (int idx = lane; idx < qpw * 16; idx += 32) {
                const int qi = idx / 16, kb = idx % 16;
                const int64_t t = t0 + warp * qpw + qi;
                const int64_t b = i0 / 4 + kb;
                if (t >= t_end || b > (pos0 + t) / 64) continue;
                const float* sc = pool + qi * kPool + 4 * kb;
                block_scores[(t * kv_heads + g) * stride + b] = fmaxf(fmaxf(fmaxf(sc[0], sc[1]), fmaxf(sc[2], sc[3])), sc[4]);
            }
            __syncwarp();
            for (int i = lane; i < qpw; i += 32) pool[i * kPool] = pool[i * kPool + kTile];
            __syncwarp();
        }
    });
    // Blocks past the last tile: the first one still sees the carried score; later ones see nothing.
    for (int idx = lane; idx < qpw; idx += 32) {
        const int64_t t = t0 + warp * qpw + idx;
        if (t >= t_end) continue;
        const int64_t qb = (pos0 + t) / 64;
        for (int64_t b = tiles1 * 16; b <= qb; ++b)
            block_scores[(t * kv_heads + g) * stride + b] = b == tiles1 * 16 ? pool[idx * kPool] : -INFINITY;
    }
}

template <int D>
cudaError_t launch_for(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                       int64_t group, int64_t stride, float* block_scores, cudaStream_t stream) {
    const int64_t qpc = kWarps * (16 / group);
    const int64_t ctas = (tokens + qpc - 1) / qpc;
    const size_t smem = sizeof(__nv_bfloat16) * 2 * kTile * D + sizeof(float) * kWarps * (16 / group) * kPool;
    if (ctas > 0x7FFFFFFF || kv_heads > 65535) return cudaErrorInvalidValue;
    auto kernel = stage1_kernel<D>;
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)); e != cudaSuccess)
        return e;
    kernel<<<dim3(static_cast<unsigned>(ctas), static_cast<unsigned>(kv_heads)), kWarps * 32, smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), c1, c2,
        tokens, pos0, kv_heads, static_cast<int>(group), stride, block_scores);
    return cudaGetLastError();
}

}  // namespace

// The generic-group prefill kernel; stage1_dispatch.cu chooses among the stage-1 paths.
cudaError_t launch_stage1_generic(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0,
                                  int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* block_scores, cudaStream_t stream) {
    if (d == 64) return launch_for<64>(q, c1, c2, tokens, pos0, kv_heads, group, stride, block_scores, stream);
    if (d == 128) return launch_for<128>(q, c1, c2, tokens, pos0, kv_heads, group, stride, block_scores, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
