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
//
// Longer rows (more than 4 segments of 1,024 blocks: past 256K tokens, while the segments' `topk`
// slots number at most 8,192) are split over many CTAs when the caller gives scratch: a CTA of 256 threads per 1,024-block segment picks the segment's
// own best `need` candidates by the same rule, and a second kernel picks the row's best among
// those. That is exact: a block among the row's best `need` (by key, then by lower index) has fewer
// than `need` candidates above it in its own segment too. One CTA per row was bound by instruction
// issue on its two SMs (26.6 µs a layer at 1M on the H200).
#include <cfloat>

#include "attention_ops.h"
#include "pdl_launch.h"
#include "select_common.cuh"

namespace quire::kernels {

namespace {

// Exclusive prefix of v over the CTA (threads in order); `total` gets the sum. Uses and leaves
// `warp_sums` (kThreads / 32 + 1 ints) free for the next call.
template <int kThreads>
__device__ __forceinline__ int cta_exclusive_scan(int v, int& total, int* warp_sums) {
    constexpr int kWarps = kThreads / 32;
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
        int w = lane < kWarps ? warp_sums[lane] : 0, wi = w;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            const int up = __shfl_up_sync(0xffffffffu, wi, off);
            if (lane >= off) wi += up;
        }
        if (lane < kWarps) warp_sums[lane] = wi - w;  // exclusive
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

template <int kThreads>
struct SelectShared {
    uint32_t warp_counts[kThreads / 32][8];  // per warp, digit pairs (2m, 2m + 1) in 16-bit halves
    int warp_sums[kThreads / 32 + 1];
    int digit, above;
};

// The cut among the CTA's candidates (bit j of `cand`: key[j] is one): the keys above `key` are
// taken, and the first `take_equal` at it (in thread, then register order).
struct Cut {
    uint32_t key = 0;
    int take_equal = 0;
};

// The need-th largest key among the candidates, 4 bits at a time from the top: per pass, count the
// candidates that share the digits found so far by their next digit, and take the digit where the
// count from the top reaches what is still needed.
template <int kPer, int kThreads>
__device__ __forceinline__ Cut find_cut(const uint32_t (&key)[kPer], uint32_t cand, int need, int64_t candidates, SelectShared<kThreads>& sh) {
    constexpr int kWarps = kThreads / 32;
    Cut cut;
    if (need >= candidates) {
        cut.take_equal = 0x7FFFFFFF;  // every candidate
        return cut;
    }
    if (need <= 0) {
        cut.key = 0xFFFFFFFFu;  // above every key: nothing taken
        return cut;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int above = 0;  // candidates above the digits found so far
    for (int shift = 12; shift >= 0; shift -= 4) {
        uint32_t w[4];
        count_digits<kPer>(key, cand, shift, cut.key, w);
        // Two digits per warp sum (each at most 32 x 32, so 16 bits hold it).
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const uint32_t pair0 = (w[q] & 0xFFu) | ((w[q] << 8) & 0xFF0000u);           // digits 4q, 4q + 1
            const uint32_t pair1 = ((w[q] >> 16) & 0xFFu) | ((w[q] >> 8) & 0xFF0000u);  // digits 4q + 2, 4q + 3
            const uint32_t sum0 = __reduce_add_sync(0xffffffffu, pair0), sum1 = __reduce_add_sync(0xffffffffu, pair1);
            if (lane == 0) {
                sh.warp_counts[warp][2 * q] = sum0;
                sh.warp_counts[warp][2 * q + 1] = sum1;
            }
        }
        __syncthreads();
        if (warp == 0) {
            // Lane l < 16 holds digit 15 - l: the count from the top is an inclusive scan.
            int count = 0;
            if (lane < 16) {
                const int d = 15 - lane;
                for (int w = 0; w < kWarps; ++w) count += static_cast<int>((sh.warp_counts[w][d >> 1] >> (16 * (d & 1))) & 0xFFFFu);
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
                sh.digit = 15 - lane;
                sh.above = above + incl - count;
            }
        }
        __syncthreads();
        cut.key = (cut.key << 4) | static_cast<uint32_t>(sh.digit);
        above = sh.above;
        __syncthreads();  // digit / above and warp_counts are rewritten by the next pass
    }
    cut.take_equal = need - above;
    return cut;
}

// The candidates the cut takes, as bits of this thread's registers.
template <int kPer, int kThreads>
__device__ __forceinline__ uint32_t taken(const uint32_t (&key)[kPer], uint32_t cand, const Cut& cut, SelectShared<kThreads>& sh) {
    int eq_here = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) eq_here += ((cand >> j) & 1u) && key[j] == cut.key;
    int eq_total = 0;
    int eq_rank = cta_exclusive_scan<kThreads>(eq_here, eq_total, sh.warp_sums);
    uint32_t chosen = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        bool pick = false;
        if ((cand >> j) & 1u) {
            if (key[j] > cut.key) pick = true;
            else if (key[j] == cut.key) pick = eq_rank++ < cut.take_equal;
        }
        chosen |= static_cast<uint32_t>(pick) << j;
    }
    return chosen;
}

// Row `item` (query pos0 + item / kv_heads, one KV head) of a call (docs/model.md §3.4): blocks
// 0 .. nb - 1, the forced ones [0, init) and [local, nb) (ForcedBlocks), the candidates between, of
// which the cut takes `need`.
struct Row {
    int64_t nb, n_forced;
    int init, local, need;
    __device__ Row(int64_t item, int64_t pos0, int64_t kv_heads, int64_t init_blocks, int64_t local_blocks, int64_t topk) {
        const int64_t qb = (pos0 + item / kv_heads) / 64;
        nb = qb + 1;
        n_forced = ForcedBlocks{qb, init_blocks, local_blocks}.count();
        init = static_cast<int>(min64(init_blocks, nb));
        local = static_cast<int>(max64(init, max64(0, qb - local_blocks)));
        need = static_cast<int>(topk - n_forced);
    }
    // A row of at most topk blocks takes them all (the CTA writes its list); false otherwise.
    __device__ bool takes_all(int64_t topk, int32_t* out) const {
        if (nb > topk) return false;
        for (int64_t i = threadIdx.x; i < topk; i += blockDim.x) out[i] = i < nb ? static_cast<int32_t>(i) : -1;
        return true;
    }
};

// Keys of blocks b0 .. b0 + kPer - 1 of `row` below `end` (0 where not a candidate) and a bit per
// candidate. 32-bit block indices (at most 32,768 blocks); every load unconditional (a clamped
// index), so that the kPer loads go out together.
template <int kPer>
__device__ __forceinline__ uint32_t load_keys(const float* row, int b0, int end, const Row& r, uint32_t (&key)[kPer]) {
    uint32_t cand = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) key[j] = __float_as_uint(row[min(b0 + j, static_cast<int>(r.nb) - 1)]);  // the score's bits, for now
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int b = b0 + j;
        const bool c = b < end && b >= r.init && b < r.local;  // not forced (ForcedBlocks::contains)
        key[j] = c ? score_key(__uint_as_float(key[j])) : 0;
        cand |= static_cast<uint32_t>(c) << j;
    }
    return cand;
}

constexpr int kRowThreads = 1024;

// One CTA per row: the row in registers, kPer blocks a thread.
template <int kPer>
__global__ void __launch_bounds__(kRowThreads) select_decode_kernel(const float* __restrict__ scores, int64_t pos0, int64_t kv_heads,
                                                                    int64_t stride, int64_t init_blocks, int64_t local_blocks, int64_t topk,
                                                                    int32_t* __restrict__ selected) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    __shared__ SelectShared<kRowThreads> sh;
    const int tid = threadIdx.x;
    const int64_t item = blockIdx.x;
    const Row r(item, pos0, kv_heads, init_blocks, local_blocks, topk);
    int32_t* out = selected + item * topk;
    if (r.takes_all(topk, out)) return;
    const int b0 = tid * kPer;
    uint32_t key[kPer];
    const uint32_t cand = load_keys<kPer>(scores + item * stride, b0, static_cast<int>(r.nb), r, key);
    const Cut cut = find_cut<kPer, kRowThreads>(key, cand, r.need, r.nb - r.n_forced, sh);
    // Ordered emission: forced blocks, and the candidates the cut takes.
    uint32_t chosen = taken<kPer, kRowThreads>(key, cand, cut, sh);
#pragma unroll
    for (int j = 0; j < kPer; ++j) chosen |= static_cast<uint32_t>(b0 + j < r.nb && !((cand >> j) & 1u)) << j;
    int chosen_total = 0;
    int at = cta_exclusive_scan<kRowThreads>(__popc(chosen), chosen_total, sh.warp_sums);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
        if ((chosen >> j) & 1u) {
            if (at < topk) out[at] = static_cast<int32_t>(b0 + j);
            ++at;
        }
    for (int64_t i = chosen_total + tid; i < topk; i += kRowThreads) out[i] = -1;
}

// The split path. Scratch: the counts of every (row, segment), then per (row, segment) `topk` slots
// of (key << 16 | block).
constexpr int kSegmentThreads = 256, kSegmentPer = 4, kSegmentBlocks = kSegmentThreads * kSegmentPer;

__global__ void __launch_bounds__(kSegmentThreads) select_segment_kernel(const float* __restrict__ scores, int64_t pos0, int64_t kv_heads,
                                                                        int64_t stride, int64_t init_blocks, int64_t local_blocks,
                                                                        int64_t topk, uint32_t* __restrict__ counts,
                                                                        uint32_t* __restrict__ slots) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ SelectShared<kSegmentThreads> sh;
    const int64_t item = blockIdx.y, seg = blockIdx.x, at_seg = item * gridDim.x + seg;
    const Row r(item, pos0, kv_heads, init_blocks, local_blocks, topk);
    const int begin = static_cast<int>(seg) * kSegmentBlocks;
    if (r.nb <= topk || begin >= r.nb) {  // the merge takes every block / nothing here
        if (threadIdx.x == 0) counts[at_seg] = 0;
        return;
    }
    const int b0 = begin + static_cast<int>(threadIdx.x) * kSegmentPer;
    uint32_t key[kSegmentPer];
    const uint32_t cand = load_keys<kSegmentPer>(scores + item * stride, b0, min(begin + kSegmentBlocks, static_cast<int>(r.nb)), r, key);
    int here = 0;
    cta_exclusive_scan<kSegmentThreads>(__popc(cand), here, sh.warp_sums);
    const Cut cut = find_cut<kSegmentPer, kSegmentThreads>(key, cand, r.need, here, sh);
    const uint32_t chosen = taken<kSegmentPer, kSegmentThreads>(key, cand, cut, sh);
    int total = 0;
    int at = cta_exclusive_scan<kSegmentThreads>(__popc(chosen), total, sh.warp_sums);
    uint32_t* out = slots + at_seg * topk;
#pragma unroll
    for (int j = 0; j < kSegmentPer; ++j)
        if ((chosen >> j) & 1u) out[at++] = key[j] << 16 | static_cast<uint32_t>(b0 + j);  // at most r.need <= topk
    if (threadIdx.x == 0) counts[at_seg] = static_cast<uint32_t>(total);
}

// The row's best `need` among its segments' (slots in block order: segment by segment, each
// ascending), written after the forced low blocks and before the forced local ones.
template <int kPer>
__global__ void __launch_bounds__(kRowThreads) select_merge_kernel(int64_t pos0, int64_t kv_heads, int64_t init_blocks, int64_t local_blocks,
                                                                   int64_t topk, int segments, const uint32_t* __restrict__ counts,
                                                                   const uint32_t* __restrict__ slots, int32_t* __restrict__ selected) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ SelectShared<kRowThreads> sh;
    const int tid = threadIdx.x;
    const int64_t item = blockIdx.x;
    const Row r(item, pos0, kv_heads, init_blocks, local_blocks, topk);
    int32_t* out = selected + item * topk;
    if (r.takes_all(topk, out)) return;
    const int64_t n_slots = static_cast<int64_t>(segments) * topk;
    uint32_t key[kPer], block[kPer];
    uint32_t cand = 0;
    int here = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int64_t s = static_cast<int64_t>(tid) * kPer + j, seg = s / topk;
        const bool c = s < n_slots && s % topk < counts[item * segments + min64(seg, segments - 1)];
        const uint32_t v = c ? slots[item * n_slots + s] : 0;
        key[j] = v >> 16;
        block[j] = v & 0xFFFFu;
        cand |= static_cast<uint32_t>(c) << j;
        here += c;
    }
    int candidates = 0;
    cta_exclusive_scan<kRowThreads>(here, candidates, sh.warp_sums);
    const Cut cut = find_cut<kPer, kRowThreads>(key, cand, r.need, candidates, sh);
    const uint32_t chosen = taken<kPer, kRowThreads>(key, cand, cut, sh);
    int chosen_total = 0;
    int at = r.init + cta_exclusive_scan<kRowThreads>(__popc(chosen), chosen_total, sh.warp_sums);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
        if ((chosen >> j) & 1u) {
            if (at < topk) out[at] = static_cast<int32_t>(block[j]);
            ++at;
        }
    // Forced: [0, init) first, [local, nb) after the chosen ones; -1 after the last.
    const int64_t local_at = r.init + chosen_total, end = local_at + (r.nb - r.local);
    for (int64_t i = tid; i < topk; i += kRowThreads) {
        if (i < r.init) out[i] = static_cast<int32_t>(i);
        else if (i >= local_at && i < end) out[i] = static_cast<int32_t>(r.local + (i - local_at));
        else if (i >= end) out[i] = -1;
    }
}

template <int kPer>
cudaError_t launch_row(const float* block_scores, int64_t items, int64_t pos0, int64_t kv_heads, int64_t stride, int64_t init_blocks,
                       int64_t local_blocks, int64_t topk, int32_t* selected, cudaStream_t stream) {
    return launch_pdl(select_decode_kernel<kPer>, static_cast<unsigned>(items), kRowThreads, 0, stream, block_scores, pos0, kv_heads, stride,
                      init_blocks, local_blocks, topk, selected);
}

template <int kPer>
cudaError_t launch_merge(int64_t items, int64_t pos0, int64_t kv_heads, int64_t init_blocks, int64_t local_blocks, int64_t topk, int segments,
                         const uint32_t* counts, const uint32_t* slots, int32_t* selected, cudaStream_t stream) {
    return launch_pdl(select_merge_kernel<kPer>, static_cast<unsigned>(items), kRowThreads, 0, stream, pos0, kv_heads, init_blocks,
                      local_blocks, topk, segments, counts, slots, selected);
}

constexpr int64_t kMaxPer = 32;  // 32,768 blocks: 2M tokens
constexpr int64_t kMergeMaxPer = 8;

int64_t blocks_of(int64_t tokens, int64_t pos0) { return (pos0 + tokens - 1) / 64 + 1; }
int64_t segments_of(int64_t tokens, int64_t pos0) { return (blocks_of(tokens, pos0) + kSegmentBlocks - 1) / kSegmentBlocks; }

// Whether the split path takes this call: rows past 4 segments, whose segments' slots the merge
// holds in registers (at most kMergeMaxPer a thread).
bool split_applies(int64_t tokens, int64_t pos0, int64_t topk) {
    const int64_t segments = segments_of(tokens, pos0);
    return segments > 4 && topk > 0 && topk <= kSegmentBlocks && segments * topk <= kRowThreads * kMergeMaxPer;
}

}  // namespace

bool select_decode_applies(int64_t tokens, int64_t pos0, int64_t kv_heads) {
    return tokens > 0 && tokens * kv_heads <= 32 && blocks_of(tokens, pos0) <= kRowThreads * kMaxPer;
}

int64_t select_decode_scratch_floats(int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t topk) {
    if (!select_decode_applies(tokens, pos0, kv_heads) || !split_applies(tokens, pos0, topk)) return 0;
    const int64_t rows = tokens * kv_heads * segments_of(tokens, pos0);
    return rows * (1 + topk);
}

cudaError_t launch_select_decode(const float* block_scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t topk, int32_t* selected, float* scratch,
                                 int64_t scratch_floats, cudaStream_t stream) {
    if (!select_decode_applies(tokens, pos0, kv_heads)) return cudaErrorInvalidValue;
    const int64_t blocks = blocks_of(tokens, pos0), items = tokens * kv_heads;
    const int64_t need_scratch = select_decode_scratch_floats(tokens, pos0, kv_heads, topk);
    if (need_scratch > 0 && scratch && scratch_floats >= need_scratch) {
        const int64_t segments = segments_of(tokens, pos0);
        auto* counts = reinterpret_cast<uint32_t*>(scratch);
        uint32_t* slots = counts + items * segments;
        if (cudaError_t e = launch_pdl(select_segment_kernel, dim3(static_cast<unsigned>(segments), static_cast<unsigned>(items)),
                                       kSegmentThreads, 0, stream, block_scores, pos0, kv_heads, stride, init_blocks, local_blocks, topk,
                                       counts, slots);
            e != cudaSuccess)
            return e;
        const int64_t per = (segments * topk + kRowThreads - 1) / kRowThreads;
        const int seg = static_cast<int>(segments);
        if (per <= 1) return launch_merge<1>(items, pos0, kv_heads, init_blocks, local_blocks, topk, seg, counts, slots, selected, stream);
        if (per <= 2) return launch_merge<2>(items, pos0, kv_heads, init_blocks, local_blocks, topk, seg, counts, slots, selected, stream);
        if (per <= 4) return launch_merge<4>(items, pos0, kv_heads, init_blocks, local_blocks, topk, seg, counts, slots, selected, stream);
        return launch_merge<8>(items, pos0, kv_heads, init_blocks, local_blocks, topk, seg, counts, slots, selected, stream);
    }
    const int64_t per = (blocks + kRowThreads - 1) / kRowThreads;
    if (per <= 1) return launch_row<1>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 2) return launch_row<2>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 4) return launch_row<4>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 8) return launch_row<8>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    if (per <= 16) return launch_row<16>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
    return launch_row<32>(block_scores, items, pos0, kv_heads, stride, init_blocks, local_blocks, topk, selected, stream);
}

}  // namespace quire::kernels
