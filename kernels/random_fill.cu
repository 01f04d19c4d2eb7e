#include "common.cuh"
#include "random_fill.h"

namespace quire::kernels {

namespace {

// splitmix64 finaliser: a good 64-bit mix of the counter.
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

__global__ void fill_random_kernel(__nv_bfloat16* out, int64_t n, uint64_t seed, float a) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const uint64_t r = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
        const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        out[i] = to_bf((2.0f * u - 1.0f) * a);
    }
}

__global__ void fill_bits_kernel(uint32_t* out, int64_t n, uint64_t seed) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = static_cast<uint32_t>(mix64(seed ^ mix64(static_cast<uint64_t>(i))) >> 32);
}

}  // namespace

cudaError_t launch_fill_random_bits(uint32_t* out, int64_t n, uint64_t seed, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    fill_bits_kernel<<<4096, 256, 0, stream>>>(out, n, seed);
    return cudaGetLastError();
}

cudaError_t launch_fill_random_bf16(uint16_t* out, int64_t n, uint64_t seed, float stddev, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    fill_random_kernel<<<4096, 256, 0, stream>>>(reinterpret_cast<__nv_bfloat16*>(out), n, seed, stddev * 1.7320508f);
    return cudaGetLastError();
}

}  // namespace quire::kernels
