// Forced blocks and top-k over pooled block scores (docs/model.md §3.4-3.5), one CTA per (query, KV
// group): a two-pass radix select on the 16-bit bf16 keys of the candidate blocks finds the k-th
// largest score, then one ordered pass emits the chosen blocks ascending — ties at the threshold
// go to the lower blocks, as in the CPU engine. A few queries (decode) take the kernel of
// select_blocks_decode.cu instead.
#include <cfloat>

#include "attention_ops.h"
#include "select_common.cuh"

namespace quire::kernels {

namespace {

constexpr int kThreads = 256;

// Exclusive prefix count of `flag` over the CTA (threads in order); `total` gets the sum.
__device__ __forceinline__ int block_prefix(bool flag, int& total, int* warp_sums) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned bal = __ballot_sync(0xffffffffu, flag);
    if (lane == 0) warp_sums[warp] = __popc(bal);
    __syncthreads();
    int before = 0;
    total = 0;
    for (int w = 0; w < kThreads / 32; ++w) {
        if (w < warp) before += warp_sums[w];
        total += warp_sums[w];
    }
    __syncthreads();
    return before + __popc(bal & ((1u << lane) - 1u));
}

// The bin (from the top) where the count of keys at or above reaches `need`; `above` gets the
// count strictly above it.
__device__ __forceinline__ int find_bin(const int* hist, int need, int& above) {
    int acc = 0;
    for (int bin = 255; bin >= 0; --bin) {
        if (acc + hist[bin] >= need) {
            above = acc;
            return bin;
        }
        acc += hist[bin];
    }
    above = acc;
    return 0;
}

__global__ void __launch_bounds__(kThreads) select_kernel(const float* __restrict__ scores, int64_t pos0, int64_t kv_heads, int64_t stride,
                                                          int64_t init_blocks, int64_t local_blocks, int64_t topk,
                                                          int32_t* __restrict__ selected) {
    __shared__ int hist[256];
    __shared__ int warp_sums[kThreads / 32];
    __shared__ int s_bin, s_above;
    const int64_t item = blockIdx.x;
    const int64_t p = pos0 + item / kv_heads;
    const int64_t qb = p / 64, nb = qb + 1;
    const float* row = scores + item * stride;
    int32_t* out = selected + item * topk;
    const ForcedBlocks fb{qb, init_blocks, local_blocks};
    auto forced = [&](int64_t b) { return fb.contains(b); };
    if (nb <= topk) {
        for (int64_t i = threadIdx.x; i < topk; i += kThreads) out[i] = i < nb ? static_cast<int32_t>(i) : -1;
        return;
    }
    const int64_t n_forced = fb.count();
    const int64_t candidates = nb - n_forced;
    const int need = static_cast<int>(topk - n_forced);

    // Radix select of the need-th largest key among the candidates: high byte, then low byte.
    uint32_t threshold = 0;
    int take_equal = 0;
    if (need >= candidates) {
        take_equal = 0x7FFFFFFF;  // every candidate
    } else if (need > 0) {
        for (int pass = 0; pass < 2; ++pass) {
            for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
            __syncthreads();
            for (int64_t base = 0; base < nb; base += kThreads) {
                const int64_t b = base + threadIdx.x;
                bool use = b < nb && !forced(b);
                uint32_t key = use ? score_key(row[b]) : 0;
                if (pass == 1) use = use && (key >> 8) == threshold;
                const uint32_t bin = pass == 0 ? key >> 8 : key & 0xFFu;
                // Warp-aggregated increments: scores cluster in few exponent bins.
                const unsigned active = __ballot_sync(0xffffffffu, use);
                if (use) {
                    const unsigned peers = __match_any_sync(active, bin);
                    if ((threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
                }
            }
            __syncthreads();
            if (threadIdx.x == 0) {
                int above = 0;
                const int want = pass == 0 ? need : need - s_above;
                s_bin = find_bin(hist, want, above);
                s_above = pass == 0 ? above : s_above + above;
            }
            __syncthreads();
            threshold = pass == 0 ? static_cast<uint32_t>(s_bin) : (threshold << 8) | static_cast<uint32_t>(s_bin);
        }
        take_equal = need - s_above;
    }
    // Ordered emission: forced blocks, keys above the threshold, and the first take_equal at it.
    int emitted = 0, equal_seen = 0;
    for (int64_t base = 0; base < nb; base += kThreads) {
        const int64_t b = base + threadIdx.x;
        const bool cand = b < nb && !forced(b);
        const uint32_t key = cand ? score_key(row[b]) : 0;
        const bool eq = need > 0 && cand && key == threshold;
        int eq_total = 0;
        const int eq_rank = equal_seen + block_prefix(eq, eq_total, warp_sums);
        const bool chosen = b < nb && (!cand || (need > 0 && (key > threshold || (eq && eq_rank < take_equal))));
        int chosen_total = 0;
        const int at = emitted + block_prefix(chosen, chosen_total, warp_sums);
        if (chosen && at < topk) out[at] = static_cast<int32_t>(b);
        emitted += chosen_total;
        equal_seen += eq_total;
    }
    for (int64_t i = emitted + threadIdx.x; i < topk; i += kThreads) out[i] = -1;
}

}  // namespace

// select_blocks_decode.cu: a few queries (one CTA of 1024 threads per row, the row in registers;
// long rows split over CTAs of 1,024 blocks when scratch is given).
bool select_decode_applies(int64_t tokens, int64_t pos0, int64_t kv_heads);
cudaError_t launch_select_decode(const float* block_scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t topk, int32_t* selected, float* scratch,
                                 int64_t scratch_floats, cudaStream_t stream);

cudaError_t launch_select_blocks(const float* block_scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t total_topk, int32_t* selected,
                                 cudaStream_t stream, float* scratch, int64_t scratch_floats) {
    if (tokens <= 0) return cudaSuccess;
    if (tokens * kv_heads > 0x7FFFFFFF) return cudaErrorInvalidValue;
    if (select_decode_applies(tokens, pos0, kv_heads))
        return launch_select_decode(block_scores, tokens, pos0, kv_heads, stride, init_blocks, local_blocks, total_topk, selected, scratch,
                                    scratch_floats, stream);
    select_kernel<<<static_cast<unsigned>(tokens * kv_heads), kThreads, 0, stream>>>(block_scores, pos0, kv_heads, stride, init_blocks,
                                                                                    local_blocks, total_topk, selected);
    return cudaGetLastError();
}

}  // namespace quire::kernels
