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
#include "pdl_launch.h"
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

// Per-digit counts of one thread's keys whose bits above the digit equal `prefix`: 16 counters of
// 8 bits in four words (a thread has at most 32 keys), digit d in word d / 4. Compile-time word
// choice with selects: a variable index would put the words in local memory.
template <int kPer>
__device__ __forceinline__ void count_digits(const uint32_t (&key)[kPer], uint32_t cand, int shift, uint32_t prefix, uint32_t (&w)[4]) {
    w[0] = w[1] = w[2] = w[3] = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const bool use = ((cand >> j) & 1u) && (key[j] >> (shift + 4)) == prefix;
        const uint32_t d = (key[j] >> shift) & 15u;
        const uint32_t inc = use ? 1u << (8 * (d & 3u)) : 0u, q = d >> 2;
        w[0] += q == 0 ? inc : 0u;
        w[1] += q == 1 ? inc : 0u;
        w[2] += q == 2 ? inc : 0u;
        w[3] += q == 3 ? inc : 0u;
    }
}

template <int kPer>
__global__ void __launch_bounds__(kThreads) select_decode_kernel(const float* __restrict__ scores, int64_t pos0, int64_t kv_heads,
                                                                 int64_t stride, int64_t init_blocks, int64_t local_blocks, int64_t topk,
                                                                 int32_t* __restrict__ selected) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    __shared__ uint32_t warp_counts[kWarps][8];  // per warp, digit pairs (2m, 2m + 1) in 16-bit halves
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

    // This thread's blocks b0 .. b0 + kPer - 1: their keys (0 where not a candidate) and a bit per
    // candidate. 32-bit block indices from here (at most 32,768 blocks); every load unconditional
    // (a clamped index), so that the kPer loads go out together.
    const int b0 = tid * kPer, nb32 = static_cast<int>(nb);
    const int first_local = static_cast<int>(max64(0, qb - local_blocks)), init32 = static_cast<int>(min64(init_blocks, nb));
    uint32_t key[kPer];
    uint32_t cand = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) key[j] = __float_as_uint(row[min(b0 + j, nb32 - 1)]);  // the score's bits, for now
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int b = b0 + j;
        const bool c = b < nb32 && b >= init32 && b < first_local;  // not forced (ForcedBlocks::contains)
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
            uint32_t w[4];
            count_digits<kPer>(key, cand, shift, threshold, w);
            // Two digits per warp sum (each at most 32 x 32, so 16 bits hold it).
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const uint32_t pair0 = (w[q] & 0xFFu) | ((w[q] << 8) & 0xFF0000u);           // digits 4q, 4q + 1
                const uint32_t pair1 = ((w[q] >> 16) & 0xFFu) | ((w[q] >> 8) & 0xFF0000u);  // digits 4q + 2, 4q + 3
                const uint32_t sum0 = __reduce_add_sync(0xffffffffu, pair0), sum1 = __reduce_add_sync(0xffffffffu, pair1);
                if (lane == 0) {
                    warp_counts[warp][2 * q] = sum0;
                    warp_counts[warp][2 * q + 1] = sum1;
                }
            }
            __syncthreads();
            if (warp == 0) {
                // Lane l < 16 holds digit 15 - l: the count from the top is an inclusive scan.
                int count = 0;
                if (lane < 16) {
                    const int d = 15 - lane;
                    for (int w = 0; w < kWarps; ++w) count += static_cast<int>((warp_counts[w][d >> 1] >> (16 * (d & 1))) & 0xFFFFu);
                }
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
    return launch_pdl(select_decode_kernel<kPer>, static_cast<unsigned>(items), kThreads, 0, stream, block_scores, pos0, kv_heads, stride,
                      init_blocks, local_blocks, topk, selected);
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
