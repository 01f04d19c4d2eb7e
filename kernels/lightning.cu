#include "attention_ops.h"
#include "common.cuh"

namespace quire::kernels {

namespace {

constexpr int kChunk = 64;
constexpr int kSlice = 32;  // value columns per CUDA block

// One block per (head, slice of 32 value columns); it walks the chunks in order. fp32 throughout,
// the same formulas as the CPU engine (model-spec §4):
//   o_i = s (gamma^(i+1) q_i S + sum_{j<=i} gamma^(i-j) (q_i . k_j) v_j)
//   S  <- gamma^L S + sum_j gamma^(L-1-j) k_j v_j
__global__ void lightning_kernel(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, int64_t tokens,
                                 int64_t pos0, int64_t heads, int64_t dk, int64_t dv, const double* slopes, float* state,
                                 __nv_bfloat16* out) {
    extern __shared__ float smem[];
    const int64_t h = blockIdx.x;
    const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kSlice;
    const int cols = static_cast<int>(min64(kSlice, dv - c0));
    float* qs = smem;                       // [64][dk]
    float* ks = qs + kChunk * dk;           // [64][dk]
    float* vs = ks + kChunk * dk;           // [64][kSlice]
    float* a = vs + kChunk * kSlice;        // [64][64]  q_i . k_j
    float* pw = a + kChunk * kChunk;        // [65]      gamma^n
    float* S = state + h * dk * dv;
    const float scale = 1.0f / sqrtf(static_cast<float>(dk));
    for (int n = threadIdx.x; n <= kChunk; n += blockDim.x) pw[n] = static_cast<float>(exp(-slopes[h] * n));
    int64_t t0 = 0;
    while (t0 < tokens) {
        const int len = static_cast<int>(min64(tokens - t0, kChunk - (pos0 + t0) % kChunk));
        __syncthreads();
        for (int64_t idx = threadIdx.x; idx < len * dk; idx += blockDim.x) {
            const int64_t i = idx / dk, r = idx % dk;
            qs[idx] = bf(q[((t0 + i) * heads + h) * dk + r]);
            ks[idx] = bf(k[((t0 + i) * heads + h) * dk + r]);
        }
        for (int idx = threadIdx.x; idx < len * kSlice; idx += blockDim.x) {
            const int i = idx / kSlice, c = idx % kSlice;
            vs[idx] = c < cols ? bf(v[((t0 + i) * heads + h) * dv + c0 + c]) : 0.0f;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < len * len; idx += blockDim.x) {
            const int i = idx / len, j = idx % len;
            float dot = 0.0f;
            if (j <= i)
                for (int64_t r = 0; r < dk; ++r) dot += qs[i * dk + r] * ks[j * dk + r];
            a[i * kChunk + j] = dot;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < len * cols; idx += blockDim.x) {
            const int i = idx / cols, c = idx % cols;
            float inter = 0.0f;
            for (int64_t r = 0; r < dk; ++r) inter += qs[i * dk + r] * S[r * dv + c0 + c];
            float o = pw[i + 1] * inter;
            for (int j = 0; j <= i; ++j) o += pw[i - j] * a[i * kChunk + j] * vs[j * kSlice + c];
            out[((t0 + i) * heads + h) * dv + c0 + c] = to_bf(scale * o);
        }
        __syncthreads();
        for (int64_t idx = threadIdx.x; idx < dk * cols; idx += blockDim.x) {
            const int64_t r = idx / cols;
            const int c = static_cast<int>(idx % cols);
            float s = pw[len] * S[r * dv + c0 + c];
            for (int j = 0; j < len; ++j) s += pw[len - 1 - j] * ks[j * dk + r] * vs[j * kSlice + c];
            S[r * dv + c0 + c] = s;
        }
        t0 += len;
    }
}

}  // namespace

cudaError_t launch_lightning(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0,
                             int64_t heads, int64_t dk, int64_t dv, const double* slopes, float* state, uint16_t* out,
                             cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    const size_t smem = sizeof(float) * static_cast<size_t>(2 * kChunk * dk + kChunk * kSlice + kChunk * kChunk + kChunk + 1);
    if (smem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(lightning_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
        if (e != cudaSuccess) return e;
    }
    const dim3 grid(static_cast<unsigned>(heads), static_cast<unsigned>((dv + kSlice - 1) / kSlice));
    lightning_kernel<<<grid, 256, smem, stream>>>(reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k),
                                                  reinterpret_cast<const __nv_bfloat16*>(v), tokens, pos0, heads, dk, dv, slopes,
                                                  state, reinterpret_cast<__nv_bfloat16*>(out));
    return cudaGetLastError();
}

}  // namespace quire::kernels
