#include "common.cuh"
#include "norm_ops.h"

namespace quire::kernels {

namespace {

__global__ void rms_norm_kernel(const __nv_bfloat16* x, const float* w, int64_t n, float eps, __nv_bfloat16* out) {
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

__global__ void rope_kernel(__nv_bfloat16* x, int64_t heads, int64_t dim, int64_t pos0, float theta) {
    const int64_t t = blockIdx.x;
    const int64_t half = dim / 2;
    const float p = static_cast<float>(pos0 + t);
    for (int64_t idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
        const int64_t h = idx / half, i = idx % half;
        const float inv_freq = 1.0f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(dim));
        const float angle = p * inv_freq;
        const float c = cosf(angle), s = sinf(angle);
        __nv_bfloat16* v = x + (t * heads + h) * dim;
        const float a = bf(v[i]), b = bf(v[i + half]);
        v[i] = to_bf(a * c - b * s);
        v[i + half] = to_bf(b * c + a * s);
    }
}

__global__ void silu_mul_kernel(const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n, __nv_bfloat16* out) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float g = bf(gate[i]);
    out[i] = to_bf(round_bf(g / (1.0f + expf(-g))) * bf(up[i]));
}

__global__ void sigmoid_gate_kernel(__nv_bfloat16* x, const __nv_bfloat16* g, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = to_bf(bf(x[i]) * round_bf(1.0f / (1.0f + expf(-bf(g[i])))));
}

__global__ void residual_add_kernel(__nv_bfloat16* x, const __nv_bfloat16* a, float scale, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = to_bf(bf(x[i]) + round_bf(bf(a[i]) * scale));
}

__global__ void scale_kernel(__nv_bfloat16* x, float factor, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = to_bf(bf(x[i]) * factor);
}

__global__ void compress_keys_kernel(const __nv_bfloat16* k, int64_t width, int64_t kernel, int64_t stride, int64_t first,
                                     __nv_bfloat16* out) {
    const int64_t j = blockIdx.x;
    const int64_t start = (first + j) * stride;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float acc = 0.0f;
        for (int64_t t = 0; t < kernel; ++t) acc += bf(k[(start + t) * width + c]);  // rows in order, as the CPU engine
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
    rms_norm_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(B(x), w, n, eps, B(out));
    return cudaGetLastError();
}

cudaError_t launch_rope(uint16_t* x, int64_t tokens, int64_t heads, int64_t dim, int64_t pos0, float theta, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (tokens > 0x7FFFFFFF || dim % 2) return cudaErrorInvalidValue;
    rope_kernel<<<static_cast<unsigned>(tokens), 256, 0, stream>>>(B(x), heads, dim, pos0, theta);
    return cudaGetLastError();
}

cudaError_t launch_silu_mul(const uint16_t* gate, const uint16_t* up, int64_t n, uint16_t* out, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    silu_mul_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(gate), B(up), n, B(out));
    return cudaGetLastError();
}

cudaError_t launch_sigmoid_gate(uint16_t* x, const uint16_t* g, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    sigmoid_gate_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(x), B(g), n);
    return cudaGetLastError();
}

cudaError_t launch_residual_add(uint16_t* x, const uint16_t* a, float scale, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    residual_add_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(x), B(a), scale, n);
    return cudaGetLastError();
}

cudaError_t launch_scale(uint16_t* x, float factor, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    scale_kernel<<<grid_for(n, 256), 256, 0, stream>>>(B(x), factor, n);
    return cudaGetLastError();
}

cudaError_t launch_compress_keys(const uint16_t* k, int64_t width, int64_t kernel, int64_t stride, int64_t first, int64_t count,
                                 uint16_t* out, cudaStream_t stream) {
    if (count <= 0) return cudaSuccess;
    if (count > 0x7FFFFFFF) return cudaErrorInvalidValue;
    compress_keys_kernel<<<static_cast<unsigned>(count), 128, 0, stream>>>(B(k), width, kernel, stride, first, B(out));
    return cudaGetLastError();
}

}  // namespace quire::kernels
