// Stage 1 for a few queries over a long context (decode, docs/model.md §3.7): the fused kernel would
// give each (query, KV head) one CTA streaming every compressed key in turn, two CTAs in all for a
// decode step. Here the work is split over the compressed keys instead, one warp per 64-key tile:
//   1. per C2 tile, each head's max and sum of 2^x          (partials)
//   2. per (query, KV head), the combined max and 1 / sum     (stats; a warp per head row)
//   3. per C1 tile, the group-summed probabilities, bf16      (fine scores)
//   4. per (query, KV head, block), max-pooling into block scores
// Same numbers as the fused kernel up to fp32 summation order. Group size 16 only (one query's
// heads fill the MMA tile); other shapes use the fused kernel.
#include <cfloat>

#include "attention_ops.h"
#include "attention_tile.cuh"
#include "stage1_tile.cuh"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

constexpr float kLog2e = 1.4426950408889634f;

template <int D>
__global__ void __launch_bounds__(32) coarse_partials_kernel(const __nv_bfloat16* __restrict__ q, const RowSource c2,
                                                             int64_t pos0, int64_t kv_heads, int64_t tiles2, float2* __restrict__ partials) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    __shared__ __align__(16) __nv_bfloat16 tile[kStage1Tile * D];
    const int lane = threadIdx.x;
    const int64_t item = blockIdx.y, u = blockIdx.x;
    const int64_t t = item / kv_heads, g = item % kv_heads;
    const int64_t n2 = visible_entries(pos0 + t + 1, 128, 64);
    stage1_load_tile<D, 32>(tile, c2, u * kStage1Tile, n2, kv_heads, g);
    uint32_t qa[D / 16][4];
    load_group_rows<D>(q + (t * kv_heads + g) * 16 * D, lane, qa);
    cp_async_wait<0>();
    __syncwarp();
    float s[8][4];
    stage1_tile_scores<D>(qa, tile, lane, s);
    const float scale2 = rsqrtf(static_cast<float>(D)) * kLog2e;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int64_t j = u * kStage1Tile + nt * 8 + 2 * (lane & 3) + e;
                s[nt][2 * h + e] = j < n2 ? scale2 * s[nt][2 * h + e] : -INFINITY;
                mx = fmaxf(mx, s[nt][2 * h + e]);
            }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float z = 0.0f;
        if (mx != -INFINITY)
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) z += fast_exp2(s[nt][2 * h] - mx) + fast_exp2(s[nt][2 * h + 1] - mx);
        z += __shfl_xor_sync(0xffffffffu, z, 1);
        z += __shfl_xor_sync(0xffffffffu, z, 2);
        if ((lane & 3) == 0) partials[(item * tiles2 + u) * 16 + (lane >> 2) + 8 * h] = make_float2(mx, z);
    }
}

// (m, z) = running max and sum of 2^(x - m); merging two keeps the larger max.
__device__ __forceinline__ float2 merge_partial(float2 a, float2 b) {
    const float m = fmaxf(a.x, b.x);
    if (m == -INFINITY) return make_float2(-INFINITY, 0.0f);
    const float za = a.x == -INFINITY ? 0.0f : a.y * fast_exp2(a.x - m);
    const float zb = b.x == -INFINITY ? 0.0f : b.y * fast_exp2(b.x - m);
    return make_float2(m, za + zb);
}

// One warp per (item, head row): lane l merges tiles l, l + 32, .., then the warp's lanes in a fixed
// tree (deterministic). 16 warps per item: a 1M step's 256 C2 tiles take 8 steps per lane instead
// of one thread's 2 × 256 dependent loads.
__global__ void __launch_bounds__(512) combine_kernel(const float2* __restrict__ partials, int64_t tiles2, float2* __restrict__ stats) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    const int64_t item = blockIdx.x;
    const int row = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float2 acc = make_float2(-INFINITY, 0.0f);
    // Eight of the lane's tiles loaded together, then merged in order: the loads of a 1M step's 8
    // tiles per lane were otherwise one after another (6.2 µs a layer under ncu).
    constexpr int kBatch = 8;
    for (int64_t u0 = lane; u0 < tiles2; u0 += 32 * kBatch) {
        float2 p[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int64_t u = u0 + 32 * b;
            p[b] = u < tiles2 ? partials[(item * tiles2 + u) * 16 + row] : make_float2(-INFINITY, 0.0f);
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
            if (u0 + 32 * b < tiles2) acc = merge_partial(acc, p[b]);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float2 other = make_float2(__shfl_xor_sync(0xffffffffu, acc.x, off), __shfl_xor_sync(0xffffffffu, acc.y, off));
        acc = merge_partial(acc, other);
    }
    if (lane == 0) stats[item * 16 + row] = make_float2(acc.x, acc.y > 0.0f ? 1.0f / acc.y : 0.0f);
}

template <int D>
__global__ void __launch_bounds__(32) fine_scores_kernel(const __nv_bfloat16* __restrict__ q, const RowSource c1,
                                                         int64_t pos0, int64_t kv_heads, const float2* __restrict__ stats,
                                                         int64_t fine_stride, float* __restrict__ fine) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    __shared__ __align__(16) __nv_bfloat16 tile[kStage1Tile * D];
    const int lane = threadIdx.x;
    const int64_t item = blockIdx.y, u = blockIdx.x;
    const int64_t t = item / kv_heads, g = item % kv_heads;
    const int64_t n1 = visible_entries(pos0 + t + 1, 32, 16);
    const int64_t i0 = u * kStage1Tile;
    if (i0 >= n1) return;
    stage1_load_tile<D, 32>(tile, c1, i0, n1, kv_heads, g);
    uint32_t qa[D / 16][4];
    load_group_rows<D>(q + (t * kv_heads + g) * 16 * D, lane, qa);
    const float2 st0 = stats[item * 16 + (lane >> 2)], st1 = stats[item * 16 + (lane >> 2) + 8];
    cp_async_wait<0>();
    __syncwarp();
    float s[8][4];
    stage1_tile_scores<D>(qa, tile, lane, s);
    const float scale2 = rsqrtf(static_cast<float>(D)) * kLog2e;
    float x[16];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int64_t i = i0 + nt * 8 + 2 * (lane & 3) + e;
            const float a = st0.y > 0.0f ? fast_exp2(scale2 * s[nt][e] - st0.x) * st0.y : 0.0f;
            const float b = st1.y > 0.0f ? fast_exp2(scale2 * s[nt][2 + e] - st1.x) * st1.y : 0.0f;
            x[2 * nt + e] = i < n1 ? a + b : 0.0f;
        }
    // Sum over the 16 rows (lane bits 2..4 and the two row halves): lane l ends with entries 2l, 2l+1.
    float c[2];
    stage1_group_sum_scatter(x, lane, c[0], c[1]);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const float v = round_bf(c[i]);
        const int64_t entry = i0 + 2 * lane + i;
        if (entry < n1) fine[item * fine_stride + entry] = v;
    }
}

// One thread per (item, block): a 1M step has 16,384 blocks per item.
__global__ void pool_kernel(const float* __restrict__ fine, int64_t fine_stride, int64_t pos0, int64_t kv_heads, int64_t stride,
                            float* __restrict__ block_scores) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    const int64_t item = blockIdx.y;
    const int64_t p = pos0 + item / kv_heads;
    const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b > p / 64) return;
    const int64_t n1 = visible_entries(p + 1, 32, 16);
    const float* row = fine + item * fine_stride;
    float best = -INFINITY;
    for (int64_t i = max64(0, 4 * b - 1); i <= min64(n1 - 1, 4 * b + 3); ++i) best = fmaxf(best, row[i]);
    block_scores[item * stride + b] = best;
}

struct SplitLayout {
    int64_t items, tiles2, tiles1, fine_stride;
    int64_t partial_floats() const { return items * tiles2 * 16 * 2; }
    int64_t total_floats() const { return partial_floats() + items * 16 * 2 + items * fine_stride; }
};

SplitLayout split_layout(int64_t tokens, int64_t pos0, int64_t kv_heads) {
    const int64_t n = pos0 + tokens;
    const int64_t n1 = n < 32 ? 0 : (n - 32) / 16 + 1, n2 = n < 128 ? 0 : (n - 128) / 64 + 1;
    return {tokens * kv_heads, (n2 + kStage1Tile - 1) / kStage1Tile, (n1 + kStage1Tile - 1) / kStage1Tile, std::max<int64_t>(n1, 1)};
}

template <int D>
cudaError_t launch_split(const uint16_t* q16, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                         int64_t stride, float* block_scores, float* scratch, cudaStream_t stream) {
    const SplitLayout L = split_layout(tokens, pos0, kv_heads);
    const auto* q = reinterpret_cast<const __nv_bfloat16*>(q16);
    float2* partials = reinterpret_cast<float2*>(scratch);
    float2* stats = partials + L.items * L.tiles2 * 16;
    float* fine = reinterpret_cast<float*>(stats + L.items * 16);
    cudaError_t e = cudaSuccess;
    if (L.tiles2 > 0)
        e = launch_pdl(coarse_partials_kernel<D>, dim3(static_cast<unsigned>(L.tiles2), static_cast<unsigned>(L.items)), 32, 0, stream, q, c2, pos0,
                       kv_heads, L.tiles2, partials);
    if (e == cudaSuccess) e = launch_pdl(combine_kernel, static_cast<unsigned>(L.items), 512, 0, stream, partials, L.tiles2, stats);
    if (e == cudaSuccess && L.tiles1 > 0)
        e = launch_pdl(fine_scores_kernel<D>, dim3(static_cast<unsigned>(L.tiles1), static_cast<unsigned>(L.items)), 32, 0, stream, q, c1, pos0,
                       kv_heads, stats, L.fine_stride, fine);
    const int64_t blocks = (pos0 + tokens - 1) / 64 + 1;
    if (e == cudaSuccess)
        e = launch_pdl(pool_kernel, dim3(static_cast<unsigned>((blocks + 255) / 256), static_cast<unsigned>(L.items)), 256, 0, stream, fine,
                       L.fine_stride, pos0, kv_heads, stride, block_scores);
    return e;
}

}  // namespace

bool stage1_uses_split(int64_t tokens, int64_t kv_heads, int64_t group) { return group == 16 && tokens * kv_heads <= 32; }

int64_t stage1_scratch_floats(int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t group) {
    if (tokens <= 0 || !stage1_uses_split(tokens, kv_heads, group)) return 0;
    return split_layout(tokens, pos0, kv_heads).total_floats();
}

cudaError_t launch_stage1_split(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                                int64_t d, int64_t stride, float* block_scores, float* scratch, cudaStream_t stream) {
    if (d == 64) return launch_split<64>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, scratch, stream);
    if (d == 128) return launch_split<128>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, scratch, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
