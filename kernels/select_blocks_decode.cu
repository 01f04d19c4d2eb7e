// Top-k block selection for a few queries over a long context (decode, docs/model.md §3.5): one CTA
// of 1024 threads per (query, KV group), each thread holding kPer consecutive block scores in
// registers. The row is read from memory once; the search for the threshold and the ordered
// emission work on registers, warp reductions and a little shared memory. select_blocks.cu's
// kernel (256 threads, the row re-read by every pass, a CTA-wide prefix per 256 blocks) suits
// prefill's thousands of rows but took ~60 µs a layer for the 16,384 blocks of a 1M decode step.
// Same result as that kernel, ties included: the k-th largest 16-bit key is found digit by digit
// (four passes of 4 bits, most significant first), then the blocks above it and the first ones at
// it are emitted in ascending order. Histograms of 256 bins with shared-memory atomics (warp-
// aggregated with __match_any_sync, per-warp or not) took ~30 µs on the H200 for a 1M row; 16 bins
// count in packed registers and add up with warp reductions, without atomics.
#include <cfloat>

#include "attention_ops.h"
#include "select_common.cuh"

namespace quire::kernels {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// Exclusive prefix of v over the CTA (threads in order); `total` gets the sum. Uses and leaves
// `warp_sums` (kWarps ints) free for the next call.
__device__ __forceinline__ int cta_exclusive_scan(int v, int& total, int* warp_sums) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int incl = v;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const int up = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += up;
    }
    if (lane == 31) warp_sums[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        int w = warp_sums[lane], wi = w;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            const int up = __shfl_up_sync(0xffffffffu, wi, off);
            if (lane >= off) wi += up;
        }
        warp_sums[lane] = wi - w;  // exclusive
        if (lane == 31) warp_sums[kWarps] = wi;
    }
    __syncthreads();
    const int out = warp_sums[warp] + incl - v;
    total = warp_sums[kWarps];
    __syncthreads();
    return out;
}

// Per-digit counts of one thread's keys: 16 counters of 8 bits in two words (a thread has at most
// 32 keys). Only keys whose bits above the digit equal `prefix` count.
template <int kPer>
__device__ __forceinline__ void count_digits(const uint32_t (&key)[kPer], uint32_t cand, int shift, uint32_t prefix, uint64_t& lo,
                                             uint64_t& hi) {
    lo = hi = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const bool use = ((cand >> j) & 1u) && (key[j] >> (shift + 4)) == prefix;
        const uint32_t d = (key[j] >> shift) & 15u;
        const uint64_t inc = use ? uint64_t{1} << (8 * (d & 7u)) : 0;
        if (d < 8) lo += inc;
        else hi += inc;
    }
}

template <int kPer>
__global__ void __launch_bounds__(kThreads) select_decode_kernel(const float* __restrict__ scores, int64_t pos0, int64_t kv_heads,
                                                                 int64_t stride, int64_t init_blocks, int64_t local_blocks, int64_t topk,
                                                                 int32_t* __restrict__ selected) {
    // One histogram per warp: the scores of a row crowd into a few exponent bins, and 32 warps
    // adding into one shared histogram serialise on those addresses (a 1M row took 30 µs so).
    __shared__ int warp_counts[kWarps][16];
    __shared__ int warp_sums[kWarps + 1];
    __shared__ int s_digit, s_above;
    const int tid = threadIdx.x;
    const int64_t item = blockIdx.x;
    const int64_t p = pos0 + item / kv_heads;
    const int64_t qb = p / 64, nb = qb + 1;
    const float* row = scores + item * stride;
    int32_t* out = selected + item * topk;
    if (nb <= topk) {
        for (int64_t i = tid; i < topk; i += kThreads) out[i] = i < nb ? static_cast<int32_t>(i) : -1;
        return;
    }
    const ForcedBlocks forced{qb, init_blocks, local_blocks};
    const int64_t n_forced = forced.count();
    const int64_t candidates = nb - n_forced;
    const int need = static_cast<int>(topk - n_forced);

    // This thread's blocks b0 .. b0 + kPer - 1: keys of the candidates, which are candidates.
    const int64_t b0 = static_cast<int64_t>(tid) * kPer;
    uint32_t key[kPer];
    uint32_t cand = 0;
    // Every load unconditional (a clamped index): a load under the candidate test became a branch
    // each, and the kPer loads went out one after another.
#pragma unroll
    for (int j = 0; j < kPer; ++j) key[j] = __float_as_uint(row[min64(b0 + j, nb - 1)]);  // the score's bits, for now
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int64_t b = b0 + j;
        const bool c = b < nb && !forced.contains(b);
        key[j] = c ? score_key(__uint_as_float(key[j])) : 0;
        cand |= static_cast<uint32_t>(c) << j;
    }

    // The need-th largest key among the candidates, 4 bits at a time from the top: per pass, count
    // the candidates that share the digits found so far by their next digit, and take the digit
    // where the count from the top reaches what is still needed.
    uint32_t threshold = 0;
    int take_equal = 0;
    if (need >= candidates) {
        take_equal = 0x7FFFFFFF;  // every candidate
    } else if (need > 0) {
        const int lane = tid & 31, warp = tid >> 5;
        int above = 0;  // candidates above the digits found so far
        for (int shift = 12; shift >= 0; shift -= 4) {
            uint64_t lo, hi;
            count_digits<kPer>(key, cand, shift, threshold, lo, hi);
#pragma unroll
            for (int d = 0; d < 16; ++d) {
                const uint32_t mine = static_cast<uint32_t>(((d < 8 ? lo : hi) >> (8 * (d & 7))) & 0xFFu);
                const uint32_t sum = __reduce_add_sync(0xffffffffu, mine);
                if (lane == 0) warp_counts[warp][d] = static_cast<int>(sum);
            }
            __syncthreads();
            if (warp == 0) {
                // Lane l < 16 holds digit 15 - l: the count from the top is an inclusive scan.
                int count = 0;
                if (lane < 16)
                    for (int w = 0; w < kWarps; ++w) count += warp_counts[w][15 - lane];
                int incl = count;
#pragma unroll
                for (int off = 1; off < 32; off <<= 1) {
                    const int up = __shfl_up_sync(0xffffffffu, incl, off);
                    if (lane >= off) incl += up;
                }
                const int want = need - above;
                const unsigned here = __ballot_sync(0xffffffffu, lane < 16 && incl - count < want && incl >= want);
                // `here` is never empty: the candidates under the current prefix number at least `want`.
                if (lane == __ffs(here) - 1) {
                    s_digit = 15 - lane;
                    s_above = above + incl - count;
                }
            }
            __syncthreads();
            threshold = (threshold << 4) | static_cast<uint32_t>(s_digit);
            above = s_above;
            __syncthreads();  // s_digit / s_above and warp_counts are rewritten by the next pass
        }
        take_equal = need - above;
    }

    // Ordered emission: forced blocks, keys above the threshold, and the first take_equal at it.
    int eq_here = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) eq_here += need > 0 && ((cand >> j) & 1u) && key[j] == threshold;
    int eq_total = 0;
    int eq_rank = cta_exclusive_scan(eq_here, eq_total, warp_sums);
    uint32_t chosen = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const bool c = (cand >> j) & 1u, valid = b0 + j < nb;
        bool pick = valid && !c;  // forced
        if (c && need > 0) {
            if (key[j] > threshold) pick = true;
            else if (key[j] == threshold) pick = eq_rank++ < take_equal;
        }
        chosen |= static_cast<uint32_t>(pick) << j;
    }
    int chosen_total = 0;
    int at = cta_exclusive_scan(__popc(chosen), chosen_total, warp_sums);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
        if ((chosen >> j) & 1u) {
            if (at < topk) out[at] = static_cast<int32_t>(b0 + j);
            ++at;
        }
    for (int64_t i = chosen_total + tid; i < topk; i += kThreads) out[i] = -1;
}

template <int kPer>
cudaError_t launch_kernel(const float* block_scores, int64_t items, int64_t pos0, int64_t kv_heads, int64_t stride, int64_t init_blocks,
                          int64_t local_blocks, int64_t topk, int32_t* selected, cudaStream_t stream) {
    select_decode_kernel<kPer><<<static_cast<unsigned>(items), kThreads, 0, stream>>>(block_scores, pos0, kv_heads, stride, init_blocks,
                                                                                       local_blocks, topk, selected);
    return cudaGetLastError();
}

constexpr int64_t kMaxPer = 32;  // 32,768 blocks: 2M tokens

}  // namespace

bool select_decode_applies(int64_t tokens, int64_t pos0, int64_t kv_heads) {
    const int64_t blocks = (pos0 + tokens - 1) / 64 + 1;
    return tokens > 0 && tokens * kv_heads <= 32 && blocks <= kThreads * kMaxPer;
}

cudaError_t launch_select_decode(const float* block_scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t topk, int32_t* selected, cudaStream_t stream) {
    if (!select_decode_applies(tokens, pos0, kv_heads)) return cudaErrorInvalidValue;
    const int64_t blocks = (pos0 + tokens - 1) / 64 + 1, items = tokens * kv_heads;
    const int64_t per = (blocks + kThreads - 1) / kThreads;
    if (per <= 1) return launch_kernel<1>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 2) return launch_kernel<2>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 4) return launch_kernel<4>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 8) return launch_kernel<8>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 16) return launch_kernel<16>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    return launch_kernel<32>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
}

}  // namespace quire::kernels
