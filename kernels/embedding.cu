#include <cuda_bf16.h>

#include "embedding.h"

namespace quire::kernels {

namespace {
__global__ void embedding_kernel(const __nv_bfloat16* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                                 float scale, __nv_bfloat16* out) {
    const int64_t t = blockIdx.x;
    const int32_t id = ids[t];
    const bool valid = id >= 0 && id < vocab;
    const __nv_bfloat16* row = table + static_cast<int64_t>(valid ? id : 0) * hidden;
    __nv_bfloat16* dst = out + t * hidden;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = __float2bfloat16_rn(valid ? __bfloat162float(row[i]) * scale : 0.0f);
}
}  // namespace

cudaError_t launch_embedding(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                             int64_t n_tokens, float scale, uint16_t* out, cudaStream_t stream) {
    if (n_tokens == 0) return cudaSuccess;
    if (n_tokens > 0x7FFFFFFF) return cudaErrorInvalidValue;
    embedding_kernel<<<static_cast<unsigned>(n_tokens), 256, 0, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(table), vocab, hidden, ids, scale, reinterpret_cast<__nv_bfloat16*>(out));
    return cudaGetLastError();
}

}  // namespace quire::kernels
