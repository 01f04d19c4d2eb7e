#include <cfloat>

#include "attention_ops.h"
#include "common.cuh"

namespace quire::kernels {

namespace {

constexpr int kBlock = 64;

// One CUDA block per (query t, KV head g): walks the query's blocks in ascending order with an online
// softmax, summing in the same order as the CPU engine's attend_tile (scores over the head dimension
// in order, P.V over keys in order, the running sum rescaled before each block is added).
__global__ void block_attention_kernel(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, int64_t pos0,
                                       int64_t kv_heads, int64_t G, int64_t d, const int64_t* offsets, const int32_t* blocks,
                                       __nv_bfloat16* out) {
    extern __shared__ float smem[];
    const int64_t item = blockIdx.x;
    const int64_t t = item / kv_heads, g = item % kv_heads;
    const int64_t p = pos0 + t;
    float* qs = smem;              // [G][d]
    float* acc = qs + G * d;       // [G][d]
    float* ks = acc + G * d;       // [64][d]
    float* vs = ks + kBlock * d;   // [64][d]
    float* sc = vs + kBlock * d;   // [G][64]
    float* m = sc + G * kBlock;    // [G]
    float* l = m + G;              // [G]
    float* corr = l + G;           // [G]
    const float scale = 1.0f / sqrtf(static_cast<float>(d));
    const int64_t heads = kv_heads * G;
    for (int64_t idx = threadIdx.x; idx < G * d; idx += blockDim.x) {
        qs[idx] = bf(q[(t * heads + g * G) * d + idx]);
        acc[idx] = 0.0f;
    }
    for (int64_t h = threadIdx.x; h < G; h += blockDim.x) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
    }
    for (int64_t bi = offsets[item]; bi < offsets[item + 1]; ++bi) {
        const int64_t b = blocks[bi];
        const int rows = static_cast<int>(min64(p, b * kBlock + kBlock - 1) - b * kBlock + 1);
        __syncthreads();
        for (int64_t idx = threadIdx.x; idx < rows * d; idx += blockDim.x) {
            const int64_t r = idx / d, c = idx % d;
            ks[idx] = bf(k[((b * kBlock + r) * kv_heads + g) * d + c]);
            vs[idx] = bf(v[((b * kBlock + r) * kv_heads + g) * d + c]);
        }
        __syncthreads();
        for (int64_t idx = threadIdx.x; idx < G * rows; idx += blockDim.x) {
            const int64_t h = idx / rows, r = idx % rows;
            float dot = 0.0f;
            for (int64_t c = 0; c < d; ++c) dot += qs[h * d + c] * ks[r * d + c];
            sc[h * kBlock + r] = scale * dot;
        }
        __syncthreads();
        for (int64_t h = threadIdx.x; h < G; h += blockDim.x) {
            float mx = m[h];
            for (int r = 0; r < rows; ++r) mx = fmaxf(mx, sc[h * kBlock + r]);
            corr[h] = expf(m[h] - mx);
            float sum = 0.0f;
            for (int r = 0; r < rows; ++r) {
                const float e = expf(sc[h * kBlock + r] - mx);
                sc[h * kBlock + r] = e;
                sum += e;
            }
            l[h] = l[h] * corr[h] + sum;
            m[h] = mx;
        }
        __syncthreads();
        for (int64_t idx = threadIdx.x; idx < G * d; idx += blockDim.x) {
            const int64_t h = idx / d, c = idx % d;
            float a = acc[idx] * corr[h];
            for (int r = 0; r < rows; ++r) a += sc[h * kBlock + r] * vs[r * d + c];
            acc[idx] = a;
        }
    }
    __syncthreads();
    for (int64_t idx = threadIdx.x; idx < G * d; idx += blockDim.x) {
        const int64_t h = idx / d;
        out[(t * heads + g * G) * d + idx] = to_bf(acc[idx] * (1.0f / l[h]));
    }
}

// Stage 1: for the query at p and KV head g, the probabilities of the visible C1 keys under the
// log-sum-exp of the visible C2 keys, summed over the group's heads in head order, bf16-rounded.
__global__ void stage1_kernel(const __nv_bfloat16* q, const __nv_bfloat16* c1, const __nv_bfloat16* c2, int64_t pos0,
                              int64_t kv_heads, int64_t G, int64_t d, int64_t stride, float* scores) {
    extern __shared__ float smem[];
    const int64_t item = blockIdx.x;
    const int64_t t = item / kv_heads, g = item % kv_heads;
    const int64_t p = pos0 + t;
    const int64_t n1 = p + 1 < 32 ? 0 : (p + 1 - 32) / 16 + 1;
    const int64_t n2 = p + 1 < 128 ? 0 : (p + 1 - 128) / 64 + 1;
    float* qs = smem;           // [G][d]
    float* mh = qs + G * d;     // [G]
    float* zh = mh + G;         // [G]
    const float s = 1.0f / sqrtf(static_cast<float>(d));
    const int64_t heads = kv_heads * G;
    float* row = scores + item * stride;
    for (int64_t idx = threadIdx.x; idx < G * d; idx += blockDim.x) qs[idx] = bf(q[(t * heads + g * G) * d + idx]);
    __syncthreads();
    if (n2 == 0) {
        for (int64_t i = threadIdx.x; i < stride; i += blockDim.x) row[i] = 0.0f;
        return;
    }
    const int64_t width = kv_heads * d;
    for (int64_t h = 0; h < G; ++h) {
        float mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < n2; j += blockDim.x) {
            float dot = 0.0f;
            for (int64_t c = 0; c < d; ++c) dot += qs[h * d + c] * bf(c2[j * width + g * d + c]);
            mx = fmaxf(mx, s * dot);
        }
        // Block-wide max, then the sum of exponentials.
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        __shared__ float red[32];
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
        __syncthreads();
        if (threadIdx.x < 32) {
            float v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : -INFINITY;
            for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
            if (threadIdx.x == 0) mh[h] = v;
        }
        __syncthreads();
        float z = 0.0f;
        for (int64_t j = threadIdx.x; j < n2; j += blockDim.x) {
            float dot = 0.0f;
            for (int64_t c = 0; c < d; ++c) dot += qs[h * d + c] * bf(c2[j * width + g * d + c]);
            z += expf(s * dot - mh[h]);
        }
        z = block_sum(z);
        if (threadIdx.x == 0) zh[h] = z;
        __syncthreads();
    }
    for (int64_t i = threadIdx.x; i < stride; i += blockDim.x) {
        float sum = 0.0f;
        if (i < n1)
            for (int64_t h = 0; h < G; ++h) {
                float dot = 0.0f;
                for (int64_t c = 0; c < d; ++c) dot += qs[h * d + c] * bf(c1[i * width + g * d + c]);
                sum += expf(s * dot - mh[h]) / zh[h];
            }
        row[i] = i < n1 ? round_bf(sum) : 0.0f;
    }
}

// Pooling + forced blocks + top-k for one (t, g): blocks after the query's are never candidates.
__global__ void select_kernel(const float* scores, int64_t pos0, int64_t kv_heads, int64_t stride, int64_t init_blocks,
                              int64_t local_blocks, int64_t total_topk, int32_t* selected) {
    extern __shared__ float pooled[];  // [qb + 1]
    const int64_t item = blockIdx.x;
    const int64_t p = pos0 + item / kv_heads;
    const int64_t qb = p / kBlock, nb = qb + 1;
    const int64_t n1 = p + 1 < 32 ? 0 : (p + 1 - 32) / 16 + 1;
    const float* row = scores + item * stride;
    int32_t* out = selected + item * total_topk;
    unsigned char* chosen = reinterpret_cast<unsigned char*>(pooled + nb);
    if (nb <= total_topk) {
        for (int64_t i = threadIdx.x; i < total_topk; i += blockDim.x) out[i] = i < nb ? static_cast<int32_t>(i) : -1;
        return;
    }
    int64_t forced = 0;
    for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) {
        const bool f = b < init_blocks || b >= qb - local_blocks;
        chosen[b] = f ? 1 : 0;
        float best = -INFINITY;
        for (int64_t i = max64(0, 4 * b - 1); i <= min64(n1 - 1, 4 * b + 3); ++i) best = fmaxf(best, row[i]);
        pooled[b] = best;
    }
    for (int64_t b = 0; b < nb; ++b) forced += (b < init_blocks || b >= qb - local_blocks) ? 1 : 0;
    __syncthreads();
    __shared__ float best_s[32];
    __shared__ int64_t best_b[32];
    for (int64_t round = forced; round < total_topk; ++round) {
        float s = -INFINITY;
        int64_t bb = INT64_MAX;
        for (int64_t b = threadIdx.x; b < nb; b += blockDim.x)
            if (!chosen[b] && (pooled[b] > s || (pooled[b] == s && b < bb) || bb == INT64_MAX)) {
                s = pooled[b];
                bb = b;
            }
        for (int o = 16; o > 0; o >>= 1) {
            const float os = __shfl_xor_sync(0xffffffffu, s, o);
            const int64_t ob = __shfl_xor_sync(0xffffffffu, bb, o);
            if (ob != INT64_MAX && (bb == INT64_MAX || os > s || (os == s && ob < bb))) {
                s = os;
                bb = ob;
            }
        }
        if ((threadIdx.x & 31) == 0) {
            best_s[threadIdx.x >> 5] = s;
            best_b[threadIdx.x >> 5] = bb;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float fs = -INFINITY;
            int64_t fb = INT64_MAX;
            for (unsigned w = 0; w < (blockDim.x >> 5); ++w)
                if (best_b[w] != INT64_MAX && (fb == INT64_MAX || best_s[w] > fs || (best_s[w] == fs && best_b[w] < fb))) {
                    fs = best_s[w];
                    fb = best_b[w];
                }
            if (fb != INT64_MAX) chosen[fb] = 1;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int64_t n = 0;
        for (int64_t b = 0; b < nb && n < total_topk; ++b)
            if (chosen[b]) out[n++] = static_cast<int32_t>(b);
        for (; n < total_topk; ++n) out[n] = -1;
    }
}

cudaError_t allow_smem(const void* kernel, size_t bytes) {
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace

cudaError_t launch_block_attention(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0,
                                   int64_t kv_heads, int64_t group, int64_t d, const int64_t* offsets, const int32_t* blocks,
                                   uint16_t* out, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (tokens * kv_heads > 0x7FFFFFFF) return cudaErrorInvalidValue;
    const size_t smem = sizeof(float) * static_cast<size_t>(2 * group * d + 2 * kBlock * d + group * kBlock + 3 * group);
    if (cudaError_t e = allow_smem(reinterpret_cast<const void*>(block_attention_kernel), smem); e != cudaSuccess) return e;
    block_attention_kernel<<<static_cast<unsigned>(tokens * kv_heads), 128, smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k), reinterpret_cast<const __nv_bfloat16*>(v),
        pos0, kv_heads, group, d, offsets, blocks, reinterpret_cast<__nv_bfloat16*>(out));
    return cudaGetLastError();
}

cudaError_t launch_stage1(const uint16_t* q, const uint16_t* c1, const uint16_t* c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                          int64_t group, int64_t d, int64_t stride, float* scores, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (tokens * kv_heads > 0x7FFFFFFF) return cudaErrorInvalidValue;
    const size_t smem = sizeof(float) * static_cast<size_t>(group * d + 2 * group);
    if (cudaError_t e = allow_smem(reinterpret_cast<const void*>(stage1_kernel), smem); e != cudaSuccess) return e;
    stage1_kernel<<<static_cast<unsigned>(tokens * kv_heads), 128, smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(c1), reinterpret_cast<const __nv_bfloat16*>(c2),
        pos0, kv_heads, group, d, stride, scores);
    return cudaGetLastError();
}

cudaError_t launch_select_blocks(const float* scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t total_topk, int32_t* selected,
                                 cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (tokens * kv_heads > 0x7FFFFFFF) return cudaErrorInvalidValue;
    const int64_t max_blocks = (pos0 + tokens - 1) / kBlock + 1;
    const size_t smem = static_cast<size_t>(max_blocks) * (sizeof(float) + 1);
    if (cudaError_t e = allow_smem(reinterpret_cast<const void*>(select_kernel), smem); e != cudaSuccess) return e;
    select_kernel<<<static_cast<unsigned>(tokens * kv_heads), 256, smem, stream>>>(scores, pos0, kv_heads, stride, init_blocks,
                                                                                 local_blocks, total_topk, selected);
    return cudaGetLastError();
}

}  // namespace quire::kernels
