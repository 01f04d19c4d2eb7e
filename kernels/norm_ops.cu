#include <initializer_list>

#include "common.cuh"
#include "gates.cuh"
#include "head_norm_rope.cuh"
#include "norm_ops.h"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

__global__ void rms_norm_kernel(const __nv_bfloat16* x, const float* w, int64_t n, float eps, __nv_bfloat16* out) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();  // the next kernel (a GEMV) may start reading its weights
    const __nv_bfloat16* row = x + static_cast<int64_t>(blockIdx.x) * n;
    __nv_bfloat16* dst = out + static_cast<int64_t>(blockIdx.x) * n;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = bf(row[i]);
        ss += v * v;
    }
    const float var = block_sum(ss) / static_cast<float>(n);
    const float inv = 1.0f / sqrtf(var + eps);  // as the CPU engine: 1/sqrt, not the approximate rsqrt
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = to_bf(round_bf(bf(row[i]) * inv) * w[i]);
}

// rms_norm_kernel's arithmetic, in the same order, with a thread's (at most K) elements held in
// registers: one read of the row instead of two, all of a thread's loads in flight at once instead of
// one after another, and the weights read before the wait (they are constant). The o-norm of a
// decode step (one row of 4,096 between Lightning and the o projection) took ~9.5 µs as the loop
// above and ~4.4 µs as add_rms_norm (ncu, H200).
template <int K>
__global__ void rms_norm_regs_kernel(const __nv_bfloat16* x, const float* w, int64_t n, float eps, __nv_bfloat16* out) {
    const int t = threadIdx.x, threads = blockDim.x;
    float wr[K];
#pragma unroll
    for (int j = 0; j < K; ++j) {
        const int64_t i = t + static_cast<int64_t>(j) * threads;
        wr[j] = i < n ? w[i] : 0.0f;
    }
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();  // the next kernel (a GEMV) may start reading its weights
    const __nv_bfloat16* row = x + static_cast<int64_t>(blockIdx.x) * n;
    __nv_bfloat16* dst = out + static_cast<int64_t>(blockIdx.x) * n;
    float v[K];
#pragma unroll
    for (int j = 0; j < K; ++j) {
        const int64_t i = t + static_cast<int64_t>(j) * threads;
        v[j] = i < n ? bf(row[i]) : 0.0f;
    }
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < K; ++j) ss += v[j] * v[j];  // the loop's order; the zeros past n add nothing
    const float var = block_sum(ss) / static_cast<float>(n);
    const float inv = 1.0f / sqrtf(var + eps);  // as the CPU engine: 1/sqrt, not the approximate rsqrt
#pragma unroll
    for (int j = 0; j < K; ++j) {
        const int64_t i = t + static_cast<int64_t>(j) * threads;
        if (i < n) dst[i] = to_bf(round_bf(v[j] * inv) * wr[j]);
    }
}
constexpr int kRmsNormRegs = 8;  // elements a thread holds

// Rows of 32 * E elements (E = 4 .. 32, a multiple of 4): one warp per row, each lane holding E
// consecutive elements in registers (8- or 16-byte accesses).
template <int E>
struct Lane {
    static constexpr int kWords = E / 4;  // uint2 words of 4 bf16
    uint2 w[kWords];
    __device__ const __nv_bfloat16* e() const { return reinterpret_cast<const __nv_bfloat16*>(w); }
    __device__ __nv_bfloat16* e() { return reinterpret_cast<__nv_bfloat16*>(w); }
};

template <int E>
__global__ void rms_norm_warp_kernel(const __nv_bfloat16* x, const float* w, int64_t rows, int64_t n, float eps, __nv_bfloat16* out) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();  // the next kernel (a GEMV) may start reading its weights
    const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const uint2* src = reinterpret_cast<const uint2*>(x + r * n + lane * E);
    Lane<E> v;
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < Lane<E>::kWords; ++k) v.w[k] = src[k];
#pragma unroll
    for (int j = 0; j < E; ++j) ss += bf(v.e()[j]) * bf(v.e()[j]);
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
    const float* wl = w + lane * E;
#pragma unroll
    for (int j = 0; j < E; ++j) v.e()[j] = to_bf(round_bf(bf(v.e()[j]) * inv) * wl[j]);
    uint2* dst = reinterpret_cast<uint2*>(out + r * n + lane * E);
#pragma unroll
    for (int k = 0; k < Lane<E>::kWords; ++k) dst[k] = v.w[k];
}

// One block per row, one thread per 8 elements (the row stays in registers between the two passes).
__global__ void add_rms_norm_kernel(__nv_bfloat16* x, const __nv_bfloat16* a, float scale, const float* w, int64_t n, float eps,
                                    __nv_bfloat16* out) {
    const float4* wl = reinterpret_cast<const float4*>(w + threadIdx.x * 8);
    const float4 w0 = wl[0], w1 = wl[1];  // constant: read before the wait
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();  // the next kernel (a GEMV) may start reading its weights
    const int64_t r = blockIdx.x;
    uint4* xr = reinterpret_cast<uint4*>(x + r * n) + threadIdx.x;
    uint4 x4 = *xr;
    const uint4 a4 = reinterpret_cast<const uint4*>(a + r * n)[threadIdx.x];
    __nv_bfloat16* xe = reinterpret_cast<__nv_bfloat16*>(&x4);
    const __nv_bfloat16* ae = reinterpret_cast<const __nv_bfloat16*>(&a4);
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        xe[j] = to_bf(bf(xe[j]) + round_bf(bf(ae[j]) * scale));
        ss += bf(xe[j]) * bf(xe[j]);
    }
    *xr = x4;
    const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(n) + eps);
    uint4 o4;
    __nv_bfloat16* oe = reinterpret_cast<__nv_bfloat16*>(&o4);
    const float wj[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) oe[j] = to_bf(round_bf(bf(xe[j]) * inv) * wj[j]);
    reinterpret_cast<uint4*>(out + r * n)[threadIdx.x] = o4;
}

// One block per token: the angle depends on (position, pair) only, so cos and sin are computed once
// per pair and applied to every head (same float formulas as the CPU engine).
__global__ void rope_kernel(__nv_bfloat16* x, int64_t heads, int64_t dim, int64_t pos0, float theta) {
    extern __shared__ float cs[];  // [half] cos, [half] sin
    const int64_t t = blockIdx.x;
    const int64_t half = dim / 2;
    rope_angles(cs, dim, pos0 + t, theta);
    for (int64_t idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
        const int64_t h = idx / half, i = idx % half;
        const float c = cs[i], s = cs[half + i];
        __nv_bfloat16* v = x + (t * heads + h) * dim;
        const float a = bf(v[i]), b = bf(v[i + half]);
        v[i] = to_bf(a * c - b * s);
        v[i + half] = to_bf(b * c + a * s);
    }
}

// Lightning's per-head q/k RMSNorm and RoPE in one pass (docs/model.md §2.5, §2.3): one block per
// token, the token's cos/sin in shared memory, one warp per head row of q or k. Lane L holds the
// elements L + 32 j, so each RoPE pair (i, i + dim/2) sits in one lane.
template <int J>  // J = dim / 32 elements per lane (2 for dim 64, 4 for dim 128)
__global__ void head_norm_rope_kernel(__nv_bfloat16* q, __nv_bfloat16* k, const float* qw, const float* kw, int64_t heads, int64_t pos0,
                                      float theta, float eps, int rope) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    constexpr int dim = 32 * J;
    __shared__ float cs[dim];  // [half] cos, [half] sin
    const int64_t t = blockIdx.x;
    rope_angles(cs, dim, pos0 + t, theta);
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    // The token's rows are shared among gridDim.y blocks (a decode step's one token spreads its
    // head rows over several SMs instead of one).
    for (int64_t row = static_cast<int64_t>(blockIdx.y) * warps + (threadIdx.x >> 5); row < 2 * heads; row += static_cast<int64_t>(warps) * gridDim.y) {
        const bool is_q = row < heads;
        __nv_bfloat16* v = (is_q ? q : k) + (t * heads + (is_q ? row : row - heads)) * dim;
        const float* w = is_q ? qw : kw;
        float x[J];
        head_row_norm_rope<J>(v, w, cs, eps, rope != 0, lane, x);
#pragma unroll
        for (int j = 0; j < J; ++j) v[lane + 32 * j] = to_bf(x[j]);
    }
}

// Element-wise kernels take 8 consecutive elements per thread (16-byte accesses) when n is a
// multiple of 8; the tail-free layout is what every caller has (widths are multiples of 64).
template <typename Op>
__global__ void elementwise8_kernel(int64_t n8, Op op) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n8) op(i);
}

struct SiluMul {
    const uint4* gate;
    const uint4* up;
    uint4* out;
    __device__ void operator()(int64_t i) const {
        const uint4 g4 = gate[i], u4 = up[i];
        uint4 o4;
        const __nv_bfloat16 *g = reinterpret_cast<const __nv_bfloat16*>(&g4), *u = reinterpret_cast<const __nv_bfloat16*>(&u4);
        __nv_bfloat16* o = reinterpret_cast<__nv_bfloat16*>(&o4);
#pragma unroll
        for (int j = 0; j < 8; ++j) o[j] = to_bf(silu_mul_one(bf(g[j]), bf(u[j])));
        out[i] = o4;
    }
};

struct SigmoidGate {
    uint4* x;
    const uint4* gate;
    __device__ void operator()(int64_t i) const {
        uint4 x4 = x[i];
        const uint4 g4 = gate[i];
        __nv_bfloat16* xe = reinterpret_cast<__nv_bfloat16*>(&x4);
        const __nv_bfloat16* g = reinterpret_cast<const __nv_bfloat16*>(&g4);
#pragma unroll
        for (int j = 0; j < 8; ++j) xe[j] = to_bf(bf(xe[j]) * sigmoid_gate_factor(bf(g[j])));
        x[i] = x4;
    }
};

struct ResidualAdd {
    uint4* x;
    const uint4* a;
    float scale;
    __device__ void operator()(int64_t i) const {
        uint4 x4 = x[i];
        const uint4 a4 = a[i];
        __nv_bfloat16* xe = reinterpret_cast<__nv_bfloat16*>(&x4);
        const __nv_bfloat16* ae = reinterpret_cast<const __nv_bfloat16*>(&a4);
#pragma unroll
        for (int j = 0; j < 8; ++j) xe[j] = to_bf(bf(xe[j]) + round_bf(bf(ae[j]) * scale));
        x[i] = x4;
    }
};

__global__ void silu_mul_kernel(const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n, __nv_bfloat16* out) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = to_bf(silu_mul_one(bf(gate[i]), bf(up[i])));
}

__global__ void sigmoid_gate_kernel(__nv_bfloat16* x, const __nv_bfloat16* g, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = to_bf(bf(x[i]) * sigmoid_gate_factor(bf(g[i])));
}

__global__ void residual_add_kernel(__nv_bfloat16* x, const __nv_bfloat16* a, float scale, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = to_bf(bf(x[i]) + round_bf(bf(a[i]) * scale));
}

bool vec8(int64_t n, std::initializer_list<const void*> ptrs) {
    if (n % 8) return false;
    for (const void* p : ptrs)
        if (reinterpret_cast<uintptr_t>(p) % 16) return false;
    return true;
}

__global__ void scale_kernel(__nv_bfloat16* x, float factor, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = to_bf(bf(x[i]) * factor);
}

__global__ void compress_keys_kernel(const RowSource k, int64_t width, int64_t kernel, int64_t stride, int64_t first, __nv_bfloat16* out) {
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    const int64_t j = blockIdx.x;
    const int64_t start = (first + j) * stride;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float acc = 0.0f;
        for (int64_t t = 0; t < kernel; ++t)  // rows in order, as the CPU engine
            acc += bf(reinterpret_cast<const __nv_bfloat16*>(k.row(start + t, width))[c]);
        out[j * width + c] = to_bf(acc / static_cast<float>(kernel));
    }
}

template <typename T>
const __nv_bfloat16* B(const T* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
template <typename T>
__nv_bfloat16* B(T* p) { return reinterpret_cast<__nv_bfloat16*>(p); }

}  // namespace

cudaError_t launch_rms_norm(const uint16_t* x, const float* w, int64_t rows, int64_t n, float eps, uint16_t* out, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (rows > 0x7FFFFFFF) return cudaErrorInvalidValue;
    if (n % 128 == 0 && n <= 1024 && reinterpret_cast<uintptr_t>(x) % 8 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0) {
        const unsigned blocks = static_cast<unsigned>((rows + 7) / 8);  // 8 rows (warps) per block
        switch (n / 128) {
            case 1: return launch_pdl(rms_norm_warp_kernel<4>, blocks, 256, 0, stream, B(x), w, rows, n, eps, B(out));
            case 2: return launch_pdl(rms_norm_warp_kernel<8>, blocks, 256, 0, stream, B(x), w, rows, n, eps, B(out));
            case 4: return launch_pdl(rms_norm_warp_kernel<16>, blocks, 256, 0, stream, B(x), w, rows, n, eps, B(out));
            case 8: return launch_pdl(rms_norm_warp_kernel<32>, blocks, 256, 0, stream, B(x), w, rows, n, eps, B(out));
            default: break;
        }
    }
    // A block per row, 256 or 512 threads: the same threads and order with or without registers.
    const int threads = n >= 2048 ? 512 : 256;
    if (n <= static_cast<int64_t>(kRmsNormRegs) * threads)
        return launch_pdl(rms_norm_regs_kernel<kRmsNormRegs>, static_cast<unsigned>(rows), threads, 0, stream, B(x), w, n, eps, B(out));
    return launch_pdl(rms_norm_kernel, static_cast<unsigned>(rows), threads, 0, stream, B(x), w, n, eps, B(out));
}

cudaError_t launch_rope(uint16_t* x, int64_t tokens, int64_t heads, int64_t dim, int64_t pos0, float theta, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (tokens > 0x7FFFFFFF || dim % 2) return cudaErrorInvalidValue;
    rope_kernel<<<static_cast<unsigned>(tokens), 256, static_cast<size_t>(dim) * sizeof(float), stream>>>(B(x), heads, dim, pos0, theta);
    return cudaGetLastError();
}

cudaError_t launch_silu_mul(const uint16_t* gate, const uint16_t* up, int64_t n, uint16_t* out, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    if (vec8(n, {gate, up, out}))
        return launch_pdl(elementwise8_kernel<SiluMul>, grid_for(n / 8, 256), 256, 0, stream, n / 8,
                          SiluMul{reinterpret_cast<const uint4*>(gate), reinterpret_cast<const uint4*>(up), reinterpret_cast<uint4*>(out)});
    else
        silu_mul_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(gate), B(up), n, B(out));
    return cudaGetLastError();
}

cudaError_t launch_sigmoid_gate(uint16_t* x, const uint16_t* g, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    if (vec8(n, {x, g}))
        return launch_pdl(elementwise8_kernel<SigmoidGate>, grid_for(n / 8, 256), 256, 0, stream, n / 8,
                          SigmoidGate{reinterpret_cast<uint4*>(x), reinterpret_cast<const uint4*>(g)});
    else
        sigmoid_gate_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(x), B(g), n);
    return cudaGetLastError();
}

cudaError_t launch_residual_add(uint16_t* x, const uint16_t* a, float scale, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    if (vec8(n, {x, a}))
        return launch_pdl(elementwise8_kernel<ResidualAdd>, grid_for(n / 8, 256), 256, 0, stream, n / 8,
                          ResidualAdd{reinterpret_cast<uint4*>(x), reinterpret_cast<const uint4*>(a), scale});
    else
        residual_add_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(x), B(a), scale, n);
    return cudaGetLastError();
}

cudaError_t launch_add_rms_norm(uint16_t* x, const uint16_t* a, float scale, const float* w, int64_t rows, int64_t n, float eps,
                                uint16_t* out, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    const bool fits = n % 256 == 0 && n / 8 <= 1024 && rows <= 0x7FFFFFFF && vec8(n, {x, a, out}) && reinterpret_cast<uintptr_t>(w) % 16 == 0;
    if (!fits) {  // the two kernels in turn
        if (cudaError_t e = launch_residual_add(x, a, scale, rows * n, stream); e != cudaSuccess) return e;
        return launch_rms_norm(x, w, rows, n, eps, out, stream);
    }
    return launch_pdl(add_rms_norm_kernel, static_cast<unsigned>(rows), static_cast<unsigned>(n / 8), 0, stream, B(x), B(a), scale, w, n, eps,
                      B(out));
}

cudaError_t launch_scale(uint16_t* x, float factor, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    scale_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(x), factor, n);
    return cudaGetLastError();
}

cudaError_t launch_compress_keys(const RowSource& k, int64_t width, int64_t kernel, int64_t stride, int64_t first, int64_t count,
                                 uint16_t* out, cudaStream_t stream) {
    if (count <= 0) return cudaSuccess;
    if (count > 0x7FFFFFFF) return cudaErrorInvalidValue;
    return launch_pdl(compress_keys_kernel, static_cast<unsigned>(count), 128, 0, stream, k, width, kernel, stride, first, B(out));
}

cudaError_t launch_head_norm_rope(uint16_t* q, uint16_t* k, const float* q_norm, const float* k_norm, int64_t tokens, int64_t heads,
                                  int64_t dim, int64_t pos0, float theta, float eps, bool rope, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if ((dim != 64 && dim != 128) || heads <= 0 || !q_norm || !k_norm) return cudaErrorInvalidValue;
    auto* qb = reinterpret_cast<__nv_bfloat16*>(q);
    auto* kb = reinterpret_cast<__nv_bfloat16*>(k);
    // Few tokens: a token's 2 * heads rows over several blocks of 8 warps (one row per warp).
    const unsigned row_blocks = tokens < 8 ? static_cast<unsigned>((2 * heads + 7) / 8) : 1u;
    const dim3 grid(static_cast<unsigned>(tokens), row_blocks);
    if (dim == 64) return launch_pdl(head_norm_rope_kernel<2>, grid, 256, 0, stream, qb, kb, q_norm, k_norm, heads, pos0, theta, eps, rope ? 1 : 0);
    return launch_pdl(head_norm_rope_kernel<4>, grid, 256, 0, stream, qb, kb, q_norm, k_norm, heads, pos0, theta, eps, rope ? 1 : 0);
}

}  // namespace quire::kernels
