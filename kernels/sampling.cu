#include <cuda_bf16.h>

#include "sampling.h"

namespace quire::kernels {

namespace {

constexpr int kThreads = 1024;
constexpr uint32_t kKeys = 1u << 16;
constexpr uint32_t kKeysPerThread = kKeys / kThreads;

// A bf16 bit pattern as an unsigned key whose order is the order of the values: larger key, larger
// logit. -0 joins +0 (the CPU compares them equal); NaN goes below everything (key 0).
__device__ __forceinline__ uint32_t order_key(uint16_t bits) {
    const uint32_t b = bits;
    if ((b & 0x7FFFu) > 0x7F80u) return 0;
    if ((b & 0x7FFFu) == 0) return 0x8000u;
    return (b & 0x8000u) ? (~b & 0xFFFFu) : (b | 0x8000u);
}

__device__ __forceinline__ float key_value(uint32_t key) {
    const uint32_t b = (key & 0x8000u) ? (key & 0x7FFFu) : (~key & 0xFFFFu);
    return __uint_as_float(b << 16);
}

// exp(logit / T - max / T) as the CPU sampler computes it: the division in float, the rest in double.
__device__ __forceinline__ double key_weight(uint32_t key, float temperature, float q_max) {
    if (key == 0) return 0.0;
    const float q = key_value(key) / temperature;
    return exp(static_cast<double>(q) - static_cast<double>(q_max));
}

template <typename T>
struct ScanSmem {
    T v[kThreads];
    T warp_offset[kThreads / 32 + 1];
};

// Prefix sums over the threads, each value added in thread order (lane 0 of every warp sums its
// warp one value after another, thread 0 the warp totals): the sums never decrease from one thread
// to the next even in floating point, and excl of thread t is incl of thread t - 1 bit for bit, so
// the intervals (excl, incl] tile (0, total] with no gap and no overlap.
template <typename T>
__device__ void block_scan(T v, ScanSmem<T>& s, T& excl, T& incl, T& total) {
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
    s.v[t] = v;
    __syncthreads();
    if (lane == 0) {
        T run = T(0);
        for (int i = 0; i < 32; ++i) {
            run = run + s.v[t + i];
            s.v[t + i] = run;
        }
    }
    __syncthreads();
    if (t == 0) {
        T run = T(0);
        for (int w = 0; w < kThreads / 32; ++w) {
            s.warp_offset[w] = run;
            run = run + s.v[w * 32 + 31];
        }
        s.warp_offset[kThreads / 32] = run;
    }
    __syncthreads();
    incl = s.warp_offset[warp] + s.v[t];
    total = s.warp_offset[kThreads / 32];
    __syncthreads();
    s.v[t] = incl;
    __syncthreads();
    excl = t == 0 ? T(0) : s.v[t - 1];
    __syncthreads();
}

// The largest v over the block (1024 threads); every thread gets it.
template <typename T>
__device__ T block_max(T v, T* smem32) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) smem32[threadIdx.x >> 5] = v;
    __syncthreads();
    v = smem32[threadIdx.x & 31];
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    return v;
}

// A place in the sorted row: the rank-th (from 1) of the tokens whose logit has `key`, with
// `before` tokens (of mass `mass_before`) sorted ahead of that run of equal logits.
struct Place {
    uint32_t key;
    uint32_t rank;
    uint32_t before;
    double mass_before;
};

// The per-thread view of the key histogram: thread t owns keys hi, hi - 1, .., hi - 63 (highest
// logits first), with the counts and masses of the keys owned by the threads before it.
struct Chunk {
    const uint32_t* hist;
    uint32_t hi;
    int last;  // index (0..63) of the last key with a count; -1: none
    uint32_t count_excl, count_incl, count_total;
    double mass_excl, mass_incl, mass_total;
    float temperature, q_max;

    __device__ uint32_t count(int j) const { return __ldcg(hist + (hi - static_cast<uint32_t>(j))); }
    __device__ double weight(int j) const { return key_weight(hi - static_cast<uint32_t>(j), temperature, q_max); }
};

// The place of the n-th token of the sorted row, 1 <= n <= count_total.
__device__ Place place_of_count(const Chunk& c, uint32_t n, Place* shared) {
    if (c.count_excl < n && n <= c.count_incl) {
        uint32_t run = c.count_excl;
        double mass = c.mass_excl;
        for (int j = 0; j <= c.last; ++j) {
            const uint32_t k = c.count(j);
            if (k == 0) continue;
            if (run + k >= n) {
                *shared = Place{c.hi - static_cast<uint32_t>(j), n - run, run, mass};
                break;
            }
            run += k;
            mass += static_cast<double>(k) * c.weight(j);
        }
    }
    __syncthreads();
    const Place p = *shared;
    __syncthreads();
    return p;
}

// The place of the first token of the sorted row at which the running mass reaches x, for
// 0 < x <= mass_total, into *out. False when no thread owns x (rounding at the very end of the row).
__device__ bool place_of_mass(const Chunk& c, double x, Place* shared, int* found, Place* out) {
    if (threadIdx.x == 0) *found = 0;
    __syncthreads();
    if (c.mass_excl < x && x <= c.mass_incl) {
        double run = c.mass_excl;
        uint32_t before = c.count_excl;
        for (int j = 0; j <= c.last; ++j) {
            const uint32_t k = c.count(j);
            if (k == 0) continue;
            const double w = c.weight(j);
            if (run + static_cast<double>(k) * w >= x || j == c.last) {
                uint32_t rank = k;
                if (w > 0.0) {
                    const double need = ceil((x - run) / w);
                    rank = need < 1.0 ? 1u : (need >= static_cast<double>(k) ? k : static_cast<uint32_t>(need));
                }
                *shared = Place{c.hi - static_cast<uint32_t>(j), rank, before, run};
                *found = 1;
                break;
            }
            run += static_cast<double>(k) * w;
            before += k;
        }
    }
    __syncthreads();
    const bool ok = *found != 0;
    *out = *shared;
    __syncthreads();  // everyone has read *shared before anyone writes it again
    return ok;
}

__device__ double mass_through(const Chunk& c, const Place& p) {
    return p.mass_before + static_cast<double>(p.rank) * key_weight(p.key, c.temperature, c.q_max);
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const uint16_t* __restrict__ logits, int vocab, const SampleArgs* __restrict__ args,
                                                          uint32_t* hist, int32_t* out) {
    __shared__ ScanSmem<double> scan_d;
    __shared__ ScanSmem<uint32_t> scan_u;
    __shared__ unsigned long long smem64[32];
    __shared__ uint32_t smem32[32];
    __shared__ Place place;
    __shared__ int found;
    const int t = threadIdx.x;
    const SampleArgs a = *args;

    if (!(a.temperature > 0.0f)) {  // greedy: the largest logit, ties to the lower id
        unsigned long long best = 0;
        for (int i = t; i < vocab; i += kThreads)
            best = max(best, (static_cast<unsigned long long>(order_key(logits[i])) << 32) | (0xFFFFFFFFull - static_cast<unsigned>(i)));
        best = block_max(best, smem64);
        if (t == 0) *out = static_cast<int32_t>(0xFFFFFFFFull - (best & 0xFFFFFFFFull));
        return;
    }

    // How many tokens have each logit value: the sorted row, as runs of equal logits.
    for (uint32_t k = static_cast<uint32_t>(t); k < kKeys; k += kThreads) hist[k] = 0;
    __threadfence();  // the zeros reach L2, where the atomics below and the __ldcg reads work
    __syncthreads();
    uint32_t kmax = 0;
    for (int i = t; i < vocab; i += kThreads) {
        const uint32_t k = order_key(logits[i]);
        atomicAdd(hist + k, 1u);
        kmax = max(kmax, k);
    }
    __threadfence_block();
    kmax = block_max(kmax, smem32);

    Chunk c;
    c.hist = hist;
    c.hi = kKeys - 1 - static_cast<uint32_t>(t) * kKeysPerThread;
    c.temperature = a.temperature;
    c.q_max = key_value(kmax) / a.temperature;
    c.last = -1;
    uint32_t count = 0;
    double mass = 0.0;
    for (int j = 0; j < static_cast<int>(kKeysPerThread); ++j) {
        const uint32_t k = c.count(j);
        if (k == 0) continue;
        c.last = j;
        count += k;
        mass += static_cast<double>(k) * c.weight(j);
    }
    block_scan(count, scan_u, c.count_excl, c.count_incl, c.count_total);
    block_scan(mass, scan_d, c.mass_excl, c.mass_incl, c.mass_total);
    const uint32_t n = c.count_total;

    // top-k: the first keep tokens; their mass normalises the probabilities.
    uint32_t keep = (a.top_k > 0 && a.top_k < static_cast<int64_t>(n)) ? static_cast<uint32_t>(a.top_k) : n;
    const double z = keep == n ? c.mass_total : mass_through(c, place_of_count(c, keep, &place));
    // top-p: the shortest prefix whose probability reaches top_p.
    if (a.top_p < 1.0f) {
        const double x = static_cast<double>(a.top_p) * z;
        uint32_t cut = 1;
        if (x > 0.0) {
            cut = keep;
            Place p;
            if (place_of_mass(c, x, &place, &found, &p)) cut = min(keep, p.before + p.rank);
        }
        keep = min(keep, cut);
    }
    // min-p: tokens with p >= min_p * p_max (p_max = 1 / z: the top token's weight is exp(0)).
    if (a.min_p > 0.0f) {
        const double threshold = static_cast<double>(a.min_p) * (1.0 / z);
        uint32_t ok = 0;
        for (int j = 0; j <= c.last; ++j) {
            const uint32_t k = c.count(j);
            if (k != 0 && c.weight(j) / z >= threshold) ok += k;
        }
        uint32_t ok_excl, ok_incl, ok_total;
        block_scan(ok, scan_u, ok_excl, ok_incl, ok_total);
        keep = min(keep, max(1u, ok_total));
    }
    // The draw: the token whose interval of the kept mass holds u * total.
    const double total = keep == n ? c.mass_total : mass_through(c, place_of_count(c, keep, &place));
    const double x = a.u * total;
    Place pick;
    if (x > 0.0 && place_of_mass(c, x, &place, &found, &pick) && pick.before + pick.rank <= keep) {
        // inside the kept tokens
    } else {
        pick = place_of_count(c, x > 0.0 ? keep : 1, &place);
    }

    // The pick.rank-th lowest id among the tokens with logit pick.key: ids in contiguous ranges per thread.
    const int per = (vocab + kThreads - 1) / kThreads;
    const int lo = t * per, end = min(vocab, lo + per);
    uint32_t matches = 0;
    for (int i = lo; i < end; ++i) matches += order_key(logits[i]) == pick.key ? 1u : 0u;
    uint32_t m_excl, m_incl, m_total;
    block_scan(matches, scan_u, m_excl, m_incl, m_total);
    if (m_excl < pick.rank && pick.rank <= m_incl) {
        uint32_t run = m_excl;
        for (int i = lo; i < end; ++i)
            if (order_key(logits[i]) == pick.key && ++run == pick.rank) {
                *out = i;
                break;
            }
    }
}

}  // namespace

cudaError_t launch_sample_token(const uint16_t* logits, int64_t vocab, const SampleArgs* args, uint32_t* scratch, int32_t* out,
                                cudaStream_t stream) {
    if (vocab <= 0 || vocab > 0x7FFFFFFF || !logits || !args || !scratch || !out) return cudaErrorInvalidValue;
    sample_kernel<<<1, kThreads, 0, stream>>>(logits, static_cast<int>(vocab), args, scratch, out);
    return cudaGetLastError();
}

}  // namespace quire::kernels
