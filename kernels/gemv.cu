#include "common.cuh"
#include "gates.cuh"
#include "gemv_row.cuh"
#include "gemv.h"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

constexpr int kWarps = 8;  // one output row per warp

// Where each row's result goes: rows [start[s], start[s] + rows[s]) of the weights write to out[s],
// token-major ([tokens, rows[s]]).
struct Outputs {
    int count;
    int64_t start[kGemvMaxOutputs + 1];
    __nv_bfloat16* out[kGemvMaxOutputs];
};

// Where weight row r's result goes: output y, row `row` of its `rows`. Chosen with constant
// indices only: indexing the parameter arrays with a variable would copy them to local memory in
// every thread.
struct RowOutput {
    __nv_bfloat16* y;
    int64_t rows, row;
};
__device__ __forceinline__ RowOutput row_output(const Outputs& outs, int64_t r) {
    __nv_bfloat16* y = outs.out[0];
    int64_t first = 0, end = outs.start[1];
#pragma unroll
    for (int i = 1; i < kGemvMaxOutputs; ++i)
        if (i < outs.count && r >= outs.start[i]) {
            y = outs.out[i];
            first = outs.start[i];
            end = outs.start[i + 1];
        }
    return {y, end - first, r - first};
}

template <int T>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const uint4* __restrict__ w, int64_t rows, int64_t chunks,
                                                           const uint4* __restrict__ x, const Outputs outs) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    const bool active = r < rows;
    const uint4* row = w + (active ? r : 0) * chunks;
    const GemvRowEarly early = gemv_row_early(row, chunks, lane, active);  // before the wait: weights only
    pdl_wait();
    pdl_launch_dependents();
    if (!active) return;
    const RowOutput o = row_output(outs, r);
    float sum[T];
    gemv_row_sums<T>(row, chunks, x, lane, early, sum);
    if (lane == 0)
#pragma unroll
        for (int t = 0; t < T; ++t) o.y[t * o.rows + o.row] = to_bf(sum[t]);
}

// 16 bytes of weights, streamed: evict-first in L2, and with `wide` the L2 fetches 256-byte
// sectors at once (fewer, longer DRAM bursts for a stream read exactly once).
template <bool wide>
__device__ __forceinline__ uint4 load_weights(const uint4* p) {
    if constexpr (wide) {
        uint4 v;
        asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(p));
        return v;
    } else {
        return __ldcs(p);
    }
}

// As gemv_kernel, with the loads of U chunks per lane issued together before any arithmetic (more
// bytes in flight per warp), WARPS rows per block.
template <int T, int U, int WARPS, bool wide>
__global__ void __launch_bounds__(WARPS * 32) gemv_batched_kernel(const uint4* __restrict__ w, int64_t rows, int64_t chunks,
                                                                  const uint4* __restrict__ x, const Outputs outs) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    const int64_t r = static_cast<int64_t>(blockIdx.x) * WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const RowOutput o = row_output(outs, r);
    __nv_bfloat16* y = o.y;
    const int64_t seg_rows = o.rows, rr = o.row;
    const uint4* row = w + r * chunks;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; ++t) acc[t] = 0.0f;
    for (int64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
        uint4 wv[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t c = c0 + 32 * u;
            wv[u] = c < chunks ? load_weights<wide>(row + c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t c = c0 + 32 * u;
            if (c >= chunks) break;
            const __nv_bfloat16* we = reinterpret_cast<const __nv_bfloat16*>(&wv[u]);
#pragma unroll
            for (int t = 0; t < T; ++t) {
                const uint4 xv = __ldg(x + t * chunks + c);
                const __nv_bfloat16* xe = reinterpret_cast<const __nv_bfloat16*>(&xv);
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[t] = fmaf(bf(we[j]), bf(xe[j]), acc[t]);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < T; ++t) {
        float v = acc[t];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) y[t * seg_rows + rr] = to_bf(v);
    }
}

// Decode (one token) with the gate that surrounds a projection fused in (docs/model.md §2.1, §2.4,
// §2.5), rounding where the separate kernels round (norm_ops.h), so the results are bit for bit
// those of launch_sigmoid_gate + GEMV and GEMV + launch_silu_mul:
//   gated:  y = W . bf16(x * bf16(sigmoid(g)))   the gated input built once per block in shared memory
//   swiglu: W = [gate; up] (2 * rows rows), y[r] = bf16(bf16(silu(bf16(gate_r . x))) * bf16(up_r . x))
template <int U, int WARPS, bool wide, bool gated, bool swiglu>
__global__ void __launch_bounds__(WARPS * 32) gemv_fused_kernel(const uint4* __restrict__ w, int64_t rows, int64_t chunks,
                                                                const uint4* __restrict__ x, const uint4* __restrict__ g,
                                                                __nv_bfloat16* __restrict__ y) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    const bool active = r < rows;
    const uint4* row = w + (active ? r : 0) * chunks;
    const uint4* row2 = w + (rows + (active ? r : 0)) * chunks;  // swiglu: the up row
    uint4 wv[U], wv2[swiglu ? U : 1];
    auto load = [&](int64_t c0) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t c = c0 + 32 * u;
            wv[u] = active && c < chunks ? load_weights<wide>(row + c) : make_uint4(0, 0, 0, 0);
            if constexpr (swiglu) wv2[u] = active && c < chunks ? load_weights<wide>(row2 + c) : make_uint4(0, 0, 0, 0);
        }
    };
    load(lane);  // the first weights before the wait, as gemv_kernel
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    extern __shared__ uint4 gated_x[];
    if constexpr (gated) {
        for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
            uint4 xv = x[c];
            const uint4 gv = g[c];
            __nv_bfloat16* xe = reinterpret_cast<__nv_bfloat16*>(&xv);
            const __nv_bfloat16* ge = reinterpret_cast<const __nv_bfloat16*>(&gv);
#pragma unroll
            for (int j = 0; j < 8; ++j) xe[j] = to_bf(bf(xe[j]) * sigmoid_gate_factor(bf(ge[j])));
            gated_x[c] = xv;
        }
        __syncthreads();
    }
    if (!active) return;
    float acc = 0.0f, acc2 = 0.0f;
    for (int64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
        if (c0 != lane) load(c0);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t c = c0 + 32 * u;
            if (c >= chunks) break;
            const uint4 xv = gated ? gated_x[c] : __ldg(x + c);
            const __nv_bfloat16* xe = reinterpret_cast<const __nv_bfloat16*>(&xv);
            const __nv_bfloat16* we = reinterpret_cast<const __nv_bfloat16*>(&wv[u]);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc = fmaf(bf(we[j]), bf(xe[j]), acc);
            if constexpr (swiglu) {
                const __nv_bfloat16* we2 = reinterpret_cast<const __nv_bfloat16*>(&wv2[u]);
#pragma unroll
                for (int j = 0; j < 8; ++j) acc2 = fmaf(bf(we2[j]), bf(xe[j]), acc2);
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if constexpr (swiglu)
        for (int o = 16; o > 0; o >>= 1) acc2 += __shfl_xor_sync(0xffffffffu, acc2, o);
    if (lane != 0) return;
    if constexpr (swiglu) {
        y[r] = to_bf(silu_mul_one(round_bf(acc), round_bf(acc2)));
    } else {
        y[r] = to_bf(acc);
    }
}

int g_variant = 0;

template <int T>
cudaError_t launch_variant(int variant, const uint4* wv, int64_t rows, int64_t chunks, const uint4* xv, const Outputs& outs, cudaStream_t stream) {
    auto grid = [&](int warps) { return static_cast<unsigned>((rows + warps - 1) / warps); };
    switch (variant) {
        case 1: return launch_pdl(gemv_batched_kernel<T, 4, 8, false>, grid(8), 8 * 32, 0, stream, wv, rows, chunks, xv, outs);
        case 2: return launch_pdl(gemv_batched_kernel<T, 8, 4, false>, grid(4), 4 * 32, 0, stream, wv, rows, chunks, xv, outs);
        case 3: return launch_pdl(gemv_batched_kernel<T, 4, 8, true>, grid(8), 8 * 32, 0, stream, wv, rows, chunks, xv, outs);
        case 4: return launch_pdl(gemv_batched_kernel<T, 8, 4, true>, grid(4), 4 * 32, 0, stream, wv, rows, chunks, xv, outs);
        case 5: return launch_pdl(gemv_batched_kernel<T, 4, 4, true>, grid(4), 4 * 32, 0, stream, wv, rows, chunks, xv, outs);
        default: return launch_pdl(gemv_kernel<T>, grid(kWarps), kWarps * 32, 0, stream, wv, rows, chunks, xv, outs);
    }
}

}  // namespace

int gemv_variant_count() { return 6; }
void set_gemv_variant(int variant) { g_variant = variant >= 0 && variant < gemv_variant_count() ? variant : 0; }

cudaError_t launch_gemv_bf16_multi(const uint16_t* w, int64_t cols, const uint16_t* x, int64_t tokens, const GemvOutput* outputs, int count,
                                   cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (count < 1 || count > kGemvMaxOutputs || tokens > kGemvMaxTokens || cols % 8 || reinterpret_cast<uintptr_t>(w) % 16 ||
        reinterpret_cast<uintptr_t>(x) % 16)
        return cudaErrorInvalidValue;
    Outputs outs{};
    outs.count = count;
    int64_t rows = 0;
    for (int i = 0; i < count; ++i) {
        if (outputs[i].rows <= 0 || !outputs[i].out) return cudaErrorInvalidValue;
        outs.start[i] = rows;
        outs.out[i] = reinterpret_cast<__nv_bfloat16*>(outputs[i].out);
        rows += outputs[i].rows;
    }
    outs.start[count] = rows;
    const auto* wv = reinterpret_cast<const uint4*>(w);
    const auto* xv = reinterpret_cast<const uint4*>(x);
    switch (tokens) {
        case 1: return launch_variant<1>(g_variant, wv, rows, cols / 8, xv, outs, stream);
        case 2: return launch_variant<2>(g_variant, wv, rows, cols / 8, xv, outs, stream);
        case 3: return launch_variant<3>(g_variant, wv, rows, cols / 8, xv, outs, stream);
        default: return launch_variant<4>(g_variant, wv, rows, cols / 8, xv, outs, stream);
    }
}

cudaError_t launch_gemv_bf16_gated_input(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, const uint16_t* gate, uint16_t* y,
                                         cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (cols % 8 || cols * 2 > 48 * 1024 || reinterpret_cast<uintptr_t>(w) % 16 || reinterpret_cast<uintptr_t>(x) % 16 ||
        reinterpret_cast<uintptr_t>(gate) % 16)
        return cudaErrorInvalidValue;
    constexpr int warps = 8;
    return launch_pdl(gemv_fused_kernel<4, warps, true, true, false>, static_cast<unsigned>((rows + warps - 1) / warps), warps * 32,
                      static_cast<size_t>(cols) * 2, stream, reinterpret_cast<const uint4*>(w), rows, cols / 8, reinterpret_cast<const uint4*>(x),
                      reinterpret_cast<const uint4*>(gate), reinterpret_cast<__nv_bfloat16*>(y));
}

cudaError_t launch_gemv_bf16_swiglu(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, uint16_t* y, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (cols % 8 || reinterpret_cast<uintptr_t>(w) % 16 || reinterpret_cast<uintptr_t>(x) % 16) return cudaErrorInvalidValue;
    constexpr int warps = 8;
    return launch_pdl(gemv_fused_kernel<4, warps, true, false, true>, static_cast<unsigned>((rows + warps - 1) / warps), warps * 32, 0, stream,
                      reinterpret_cast<const uint4*>(w), rows, cols / 8, reinterpret_cast<const uint4*>(x), static_cast<const uint4*>(nullptr),
                      reinterpret_cast<__nv_bfloat16*>(y));
}

cudaError_t launch_gemv_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, uint16_t* y,
                             cudaStream_t stream) {
    if (tokens <= 0 || rows <= 0) return cudaSuccess;
    const GemvOutput one{rows, y};
    return launch_gemv_bf16_multi(w, cols, x, tokens, &one, 1, stream);
}

}  // namespace quire::kernels
