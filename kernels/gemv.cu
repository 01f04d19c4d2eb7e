#include "common.cuh"
#include "gemv.h"

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

template <int T>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const uint4* __restrict__ w, int64_t rows, int64_t chunks,
                                                           const uint4* __restrict__ x, const Outputs outs) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    int seg = 0;
    while (seg + 1 < outs.count && r >= outs.start[seg + 1]) ++seg;
    const int64_t seg_rows = outs.start[seg + 1] - outs.start[seg];
    __nv_bfloat16* __restrict__ y = outs.out[seg];
    const int64_t rr = r - outs.start[seg];
    const uint4* row = w + r * chunks;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; ++t) acc[t] = 0.0f;
#pragma unroll 4
    for (int64_t c = lane; c < chunks; c += 32) {
        const uint4 wv = __ldcs(row + c);  // streamed once: do not keep in L2
        const __nv_bfloat16* we = reinterpret_cast<const __nv_bfloat16*>(&wv);
#pragma unroll
        for (int t = 0; t < T; ++t) {
            const uint4 xv = __ldg(x + t * chunks + c);
            const __nv_bfloat16* xe = reinterpret_cast<const __nv_bfloat16*>(&xv);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[t] = fmaf(bf(we[j]), bf(xe[j]), acc[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < T; ++t) {
        float v = acc[t];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) y[t * seg_rows + rr] = to_bf(v);
    }
}

}  // namespace

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
    const unsigned grid = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
    const auto* wv = reinterpret_cast<const uint4*>(w);
    const auto* xv = reinterpret_cast<const uint4*>(x);
    switch (tokens) {
        case 1: gemv_kernel<1><<<grid, kWarps * 32, 0, stream>>>(wv, rows, cols / 8, xv, outs); break;
        case 2: gemv_kernel<2><<<grid, kWarps * 32, 0, stream>>>(wv, rows, cols / 8, xv, outs); break;
        case 3: gemv_kernel<3><<<grid, kWarps * 32, 0, stream>>>(wv, rows, cols / 8, xv, outs); break;
        default: gemv_kernel<4><<<grid, kWarps * 32, 0, stream>>>(wv, rows, cols / 8, xv, outs); break;
    }
    return cudaGetLastError();
}

cudaError_t launch_gemv_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, uint16_t* y,
                             cudaStream_t stream) {
    if (tokens <= 0 || rows <= 0) return cudaSuccess;
    const GemvOutput one{rows, y};
    return launch_gemv_bf16_multi(w, cols, x, tokens, &one, 1, stream);
}

}  // namespace quire::kernels
