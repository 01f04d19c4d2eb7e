// The W4/W8 decode GEMV. Layout facts it is built on (gptq_view.h): qweight is [in / per_word, out]
// int32, so one 16-byte load holds 4 adjacent output columns for per_word consecutive inputs, and
// adjacent threads reading adjacent 16 bytes read whole cache lines. A CTA owns 4 * TPR columns
// (TPR threads side by side cover one row of the tile) and 256 / TPR "row lanes", each of which
// walks its own contiguous range of packed rows, so scales and zeros are loaded once per group, not
// once per word. The row lanes are summed in a fixed order (shuffles, then shared memory): the
// result does not depend on timing.
//
// Unpacking without integer-to-float conversions (which run at a quarter of the FMA rate): a field
// of up to 23 bits OR-ed into the mantissa of 2^23 gives 2^23 + q * 2^pos as a float, and one
// subtraction leaves q * 2^pos exactly. The matching input is pre-scaled by 2^-pos (exact), so
//   sum_k q_k x_k  accumulates with one FMA per weight,
// and per group  acc += scale * (sum_k q_k x_k - (zero + offset) * sum_k x_k).
// Fields that reach bit 23 or above are shifted down first. With g_idx (desc_act) the group changes from input to input: that path dequantizes each
// weight on its own, slower but exact.
#include <cuda_fp16.h>

#include "common.cuh"
#include "device_limits.h"
#include "gptq_check.h"
#include "gptq_gemv.h"
#include "gptq_gemv_mma.h"

namespace quire::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 8;  // packed rows in flight per thread

struct Layer {
    const uint32_t* qweight;
    const uint32_t* qzeros;
    const __half* scales;
    const int32_t* g_idx;
    int64_t out;
    int64_t group_size;
    int64_t first_block;  // this layer's first CTA in the grid
    int zero_offset;
    bool tiled;
    __nv_bfloat16* y;
};
struct Layers {
    int count;
    int64_t in;
    Layer l[kGptqGemvMaxLayers];
};

__device__ __forceinline__ float bf_lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf_hi(uint32_t v) { return __uint_as_float(v & 0xFFFF0000u); }

// Input k0 .. k0 + per_word - 1 of token row `x` as floats.
template <int BITS>
__device__ __forceinline__ void load_x(const __nv_bfloat16* x, int64_t k0, float* xf) {
    if constexpr (BITS == 4) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(x + k0));
        const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            xf[2 * i] = bf_lo(u[i]);
            xf[2 * i + 1] = bf_hi(u[i]);
        }
    } else {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(x + k0));
        xf[0] = bf_lo(v.x);
        xf[1] = bf_hi(v.x);
        xf[2] = bf_lo(v.y);
        xf[3] = bf_hi(v.y);
    }
}

// Where field i of a word sits after the optional shift that keeps it inside the 23-bit mantissa
// (bits 0..22): 4 bits: fields 0-4 in place, 5-7 shifted down by 20; 8 bits: 0-1 in place, 2-3 by 16.
template <int BITS>
__device__ __forceinline__ constexpr int field_shift(int i) { return BITS * (i + 1) <= 23 ? 0 : BITS * (23 / BITS); }
template <int BITS>
__device__ __forceinline__ constexpr int field_pos(int i) { return BITS * i - field_shift<BITS>(i); }

// One packed row (4 columns) into the group's raw sums: part[n][c] += sum_i q_i(c) x_n(k0 + i),
// sx[n] += sum_i x_n(k0 + i).
template <int BITS, int N>
__device__ __forceinline__ void accumulate_row(const uint4 w, const __nv_bfloat16* __restrict__ x, int64_t in, int64_t k0, int tokens,
                                               float (&part)[N][4], float (&sx)[N]) {
    constexpr int kPw = 32 / BITS;
    constexpr uint32_t kMask = (1u << BITS) - 1;
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
    float v[4][kPw];  // q * 2^pos
#pragma unroll
    for (int c = 0; c < 4; ++c)
#pragma unroll
        for (int i = 0; i < kPw; ++i)
            v[c][i] = __uint_as_float(((ws[c] >> field_shift<BITS>(i)) & (kMask << field_pos<BITS>(i))) | 0x4B000000u) - 8388608.0f;
#pragma unroll
    for (int n = 0; n < N; ++n) {
        if (n >= tokens) break;
        float xf[kPw];
        load_x<BITS>(x + n * in, k0, xf);
#pragma unroll
        for (int i = 0; i < kPw; ++i) {
            sx[n] += xf[i];
            xf[i] *= __uint_as_float(static_cast<uint32_t>(127 - field_pos<BITS>(i)) << 23);  // 2^-pos, exact
        }
#pragma unroll
        for (int c = 0; c < 4; ++c)
#pragma unroll
            for (int i = 0; i < kPw; ++i) part[n][c] = fmaf(v[c][i], xf[i], part[n][c]);
    }
}

// Scales and zero points (with the checkpoint's offset) of group g for columns j0 .. j0 + 3.
template <int BITS>
__device__ __forceinline__ void group_params(const Layer& L, int64_t g, int64_t j0, float (&s)[4], float (&z)[4]) {
    constexpr int kPw = 32 / BITS;
    constexpr uint32_t kMask = (1u << BITS) - 1;
    const uint2 sv = __ldg(reinterpret_cast<const uint2*>(L.scales + g * L.out + j0));
    const __half2 s01 = *reinterpret_cast<const __half2*>(&sv.x), s23 = *reinterpret_cast<const __half2*>(&sv.y);
    s[0] = __low2float(s01);
    s[1] = __high2float(s01);
    s[2] = __low2float(s23);
    s[3] = __high2float(s23);
    const uint32_t zw = __ldg(L.qzeros + g * (L.out / kPw) + j0 / kPw) >> (BITS * (j0 % kPw));
#pragma unroll
    for (int c = 0; c < 4; ++c) z[c] = static_cast<float>(static_cast<int>((zw >> (BITS * c)) & kMask) + L.zero_offset);
}

template <int BITS, int N>
__device__ __forceinline__ void rows_contiguous(const Layer& L, const __nv_bfloat16* __restrict__ x, int64_t in, int tokens, int64_t j0,
                                                int64_t r_begin, int64_t r_end, float (&acc)[N][4]) {
    constexpr int kPw = 32 / BITS;
    const int64_t rows_per_group = L.group_size / kPw, stride = gptq_row_stride(L.tiled, L.out);
    const uint32_t* qw = L.qweight + gptq_word_base(L.tiled, in / kPw, j0);
    for (int64_t row = r_begin; row < r_end;) {
        const int64_t g = row / rows_per_group;
        const int64_t seg_end = min64(r_end, (g + 1) * rows_per_group);
        float part[N][4] = {}, sx[N] = {};
        for (int64_t r = row; r < seg_end; r += kUnroll) {
            uint4 w[kUnroll];
#pragma unroll
            for (int u = 0; u < kUnroll; ++u)  // all loads first: kUnroll * 16 bytes in flight
                w[u] = r + u < seg_end ? __ldcs(reinterpret_cast<const uint4*>(qw + (r + u) * stride)) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int u = 0; u < kUnroll; ++u)
                if (r + u < seg_end) accumulate_row<BITS, N>(w[u], x, in, (r + u) * kPw, tokens, part, sx);
        }
        row = seg_end;
        float s[4], z[4];
        group_params<BITS>(L, g, j0, s, z);
#pragma unroll
        for (int n = 0; n < N; ++n)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[n][c] = fmaf(s[c], part[n][c] - z[c] * sx[n], acc[n][c]);
    }
}

// The same sums with the next kPipe packed rows loading while the current ones are computed, and
// the group's scales applied whenever the walk crosses a group boundary.
template <int BITS, int N>
__device__ __forceinline__ void rows_pipelined(const Layer& L, const __nv_bfloat16* __restrict__ x, int64_t in, int tokens, int64_t j0,
                                               int64_t r_begin, int64_t r_end, float (&acc)[N][4]) {
    constexpr int kPw = 32 / BITS, kPipe = 4;
    if (r_begin >= r_end) return;
    const int64_t rows_per_group = L.group_size / kPw, stride = gptq_row_stride(L.tiled, L.out);
    const uint32_t* qw = L.qweight + gptq_word_base(L.tiled, in / kPw, j0);
    uint4 cur[kPipe], nxt[kPipe];
#pragma unroll
    for (int u = 0; u < kPipe; ++u) {
        cur[u] = r_begin + u < r_end ? __ldcs(reinterpret_cast<const uint4*>(qw + (r_begin + u) * stride)) : make_uint4(0, 0, 0, 0);
        nxt[u] = make_uint4(0, 0, 0, 0);
    }
    int64_t g = r_begin / rows_per_group, g_end = (g + 1) * rows_per_group;
    float part[N][4] = {}, sx[N] = {};
    auto flush = [&]() {
        float s[4], z[4];
        group_params<BITS>(L, g, j0, s, z);
#pragma unroll
        for (int n = 0; n < N; ++n) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                acc[n][c] = fmaf(s[c], part[n][c] - z[c] * sx[n], acc[n][c]);
                part[n][c] = 0.0f;
            }
            sx[n] = 0.0f;
        }
    };
    for (int64_t r = r_begin; r < r_end; r += kPipe) {
        if (r + kPipe < r_end) {
#pragma unroll
            for (int u = 0; u < kPipe; ++u)  // in flight while this batch is computed
                nxt[u] = r + kPipe + u < r_end ? __ldcs(reinterpret_cast<const uint4*>(qw + (r + kPipe + u) * stride)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < kPipe; ++u) {
            const int64_t row = r + u;
            if (row < r_end) {
                if (row == g_end) {
                    flush();
                    ++g;
                    g_end += rows_per_group;
                }
                accumulate_row<BITS, N>(cur[u], x, in, row * kPw, tokens, part, sx);
            }
        }
#pragma unroll
        for (int u = 0; u < kPipe; ++u) cur[u] = nxt[u];
    }
    flush();
}

template <int BITS, int N>
__device__ __forceinline__ void rows_general(const Layer& L, const __nv_bfloat16* __restrict__ x, int64_t in, int tokens, int64_t j0,
                                             int64_t r_begin, int64_t r_end, float (&acc)[N][4]) {
    constexpr int kPw = 32 / BITS;
    constexpr uint32_t kMask = (1u << BITS) - 1;
    const uint32_t* qw = L.qweight + gptq_word_base(L.tiled, in / kPw, j0);
    const int64_t stride = gptq_row_stride(L.tiled, L.out);
    for (int64_t row = r_begin; row < r_end; ++row) {
        const uint4 w = __ldcs(reinterpret_cast<const uint4*>(qw + row * stride));
        const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < kPw; ++i) {
            const int64_t k = row * kPw + i;
            const int64_t g = L.g_idx ? static_cast<int64_t>(__ldg(L.g_idx + k)) : k / L.group_size;
            float s[4], z[4], wv[4];
            group_params<BITS>(L, g, j0, s, z);
#pragma unroll
            for (int c = 0; c < 4; ++c) wv[c] = s[c] * (static_cast<float>((ws[c] >> (BITS * i)) & kMask) - z[c]);
#pragma unroll
            for (int n = 0; n < N; ++n) {
                if (n >= tokens) break;
                const float xv = bf(x[n * in + k]);
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[n][c] = fmaf(wv[c], xv, acc[n][c]);
            }
        }
    }
}

template <int BITS, int TPR, int N, bool PIPELINED>
__global__ void __launch_bounds__(kThreads) gptq_gemv_kernel(const Layers layers, const __nv_bfloat16* __restrict__ x, int tokens) {
    constexpr int kPw = 32 / BITS, kCols = 4 * TPR, kLanes = kThreads / TPR;
    __shared__ float red[kWarps][N][kCols];
    // This CTA's layer, chosen with constant indices only (a variable index would copy the
    // parameter array to local memory).
    Layer L = layers.l[0];
#pragma unroll
    for (int i = 1; i < kGptqGemvMaxLayers; ++i)
        if (i < layers.count && static_cast<int64_t>(blockIdx.x) >= layers.l[i].first_block) L = layers.l[i];
    const int64_t in = layers.in, rows = in / kPw;
    const int64_t tile_j0 = (static_cast<int64_t>(blockIdx.x) - L.first_block) * kCols;
    const int64_t j0 = tile_j0 + (threadIdx.x % TPR) * 4;
    const int64_t per_lane = (rows + kLanes - 1) / kLanes;
    const int64_t r_begin = min64(rows, (threadIdx.x / TPR) * per_lane), r_end = min64(rows, r_begin + per_lane);
    float acc[N][4] = {};
    if (j0 < L.out) {  // out is a multiple of 4: a thread's 4 columns are all in or all out
        if (!L.g_idx && L.group_size % kPw == 0) {
            if constexpr (PIPELINED) rows_pipelined<BITS, N>(L, x, in, tokens, j0, r_begin, r_end, acc);
            else rows_contiguous<BITS, N>(L, x, in, tokens, j0, r_begin, r_end, acc);
        }
        else
            rows_general<BITS, N>(L, x, in, tokens, j0, r_begin, r_end, acc);
    }
    // Lanes TPR apart hold the same columns: fold the warp, then the warps, in a fixed order.
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (int n = 0; n < N; ++n)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            float v = acc[n][c];
#pragma unroll
            for (int o = TPR; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane < TPR) red[warp][n][lane * 4 + c] = v;
        }
    __syncthreads();
    for (int i = threadIdx.x; i < N * kCols; i += kThreads) {
        const int n = i / kCols, col = i % kCols;
        const int64_t j = tile_j0 + col;
        if (n >= tokens || j >= L.out) continue;
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) sum += red[w][n][col];
        L.y[n * L.out + j] = to_bf(sum);
    }
}

template <int BITS, int TPR, bool PIPELINED>
cudaError_t launch_loop(const Layers& layers, int64_t blocks, const __nv_bfloat16* x, int tokens, cudaStream_t stream) {
    const unsigned grid = static_cast<unsigned>(blocks);
    if (tokens == 1) gptq_gemv_kernel<BITS, TPR, 1, PIPELINED><<<grid, kThreads, 0, stream>>>(layers, x, tokens);
    else if (tokens == 2) gptq_gemv_kernel<BITS, TPR, 2, PIPELINED><<<grid, kThreads, 0, stream>>>(layers, x, tokens);
    else if (tokens <= 4) gptq_gemv_kernel<BITS, TPR, 4, PIPELINED><<<grid, kThreads, 0, stream>>>(layers, x, tokens);
    else gptq_gemv_kernel<BITS, TPR, 8, PIPELINED><<<grid, kThreads, 0, stream>>>(layers, x, tokens);
    return cudaGetLastError();
}

template <int BITS, int TPR>
cudaError_t launch_tpr(const Layers& layers, int64_t blocks, const __nv_bfloat16* x, int tokens, bool pipelined, cudaStream_t stream) {
    return pipelined ? launch_loop<BITS, TPR, true>(layers, blocks, x, tokens, stream)
                     : launch_loop<BITS, TPR, false>(layers, blocks, x, tokens, stream);
}

int64_t blocks_for(const GptqGemvLayer* layers, int count, int cols) {
    int64_t blocks = 0;
    for (int i = 0; i < count; ++i) blocks += (layers[i].weights.out + cols - 1) / cols;
    return blocks;
}

}  // namespace

cudaError_t launch_gptq_gemv_multi(const GptqGemvLayer* layers, int count, const uint16_t* x, int64_t tokens, cudaStream_t stream,
                                   GptqGemvLoop loop, const GptqGemvScratch* scratch) {
    if (tokens <= 0) return cudaSuccess;
    if (!layers || count < 1 || count > kGptqGemvMaxLayers || tokens > kGptqGemvMaxTokens || !x || reinterpret_cast<uintptr_t>(x) % 16)
        return cudaErrorInvalidValue;
    const GptqView& first = layers[0].weights;
    for (int i = 0; i < count; ++i) {
        const GptqView& w = layers[i].weights;
        if (!gptq_view_usable(w) || !layers[i].out || w.in != first.in || w.bits != first.bits) return cudaErrorInvalidValue;
    }
    const DeviceLimits& lim = device_limits();
    if (lim.device < 0) return cudaErrorInvalidValue;
    if (loop == GptqGemvLoop::automatic || loop == GptqGemvLoop::tensor_cores) {
        if (gptq_gemv_mma_applies(layers, count)) return launch_gptq_gemv_mma(layers, count, x, tokens, stream, scratch);
        if (loop == GptqGemvLoop::tensor_cores) return cudaErrorInvalidValue;
    }
    // The widest tile (whole 128-byte lines per packed row) that still gives every SM a CTA; narrower
    // tiles (64- or 32-byte segments) for small layers, which would otherwise leave SMs idle.
    int tpr = 2;
    if (blocks_for(layers, count, 32) >= lim.sm_count) tpr = 8;
    else if (blocks_for(layers, count, 16) >= lim.sm_count) tpr = 4;
    const int64_t blocks = blocks_for(layers, count, 4 * tpr);
    if (blocks > 0x7FFFFFFF) return cudaErrorInvalidValue;
    Layers ls{};
    ls.count = count;
    ls.in = first.in;
    int64_t at = 0;
    for (int i = 0; i < count; ++i) {
        const GptqView& w = layers[i].weights;
        ls.l[i] = Layer{reinterpret_cast<const uint32_t*>(w.qweight), reinterpret_cast<const uint32_t*>(w.qzeros), w.scales, w.g_idx, w.out,
                        w.group_size, at, w.zero_offset, w.tiled, reinterpret_cast<__nv_bfloat16*>(layers[i].out)};
        at += (w.out + 4 * tpr - 1) / (4 * tpr);
    }
    const auto* xb = reinterpret_cast<const __nv_bfloat16*>(x);
    const int t = static_cast<int>(tokens);
    const bool pipelined = loop == GptqGemvLoop::pipelined;
    if (first.bits == 4) {
        if (tpr == 8) return launch_tpr<4, 8>(ls, blocks, xb, t, pipelined, stream);
        if (tpr == 4) return launch_tpr<4, 4>(ls, blocks, xb, t, pipelined, stream);
        return launch_tpr<4, 2>(ls, blocks, xb, t, pipelined, stream);
    }
    if (tpr == 8) return launch_tpr<8, 8>(ls, blocks, xb, t, pipelined, stream);
    if (tpr == 4) return launch_tpr<8, 4>(ls, blocks, xb, t, pipelined, stream);
    return launch_tpr<8, 2>(ls, blocks, xb, t, pipelined, stream);
}

cudaError_t launch_gptq_gemv(const GptqView& w, const uint16_t* x, int64_t tokens, uint16_t* y, cudaStream_t stream, GptqGemvLoop loop,
                             const GptqGemvScratch* scratch) {
    const GptqGemvLayer one{w, y};
    return launch_gptq_gemv_multi(&one, 1, x, tokens, stream, loop, scratch);
}

}  // namespace quire::kernels
