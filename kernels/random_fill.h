#pragma once
// Random bf16 fill for synthetic models (benchmarks): uniform on [-a, a] with a = stddev * sqrt(3),
// so the variance is stddev^2, from a counter-based hash of (seed, index): the same on any GPU.

#include <cuda_runtime.h>

#include <cstdint>

namespace quire::kernels {

cudaError_t launch_fill_random_bf16(uint16_t* out, int64_t n, uint64_t seed, float stddev, cudaStream_t stream);

// Uniformly random 32-bit words from the same hash: the packed weights of a synthetic GPTQ model
// (every 4- or 8-bit field uniform over its range).
cudaError_t launch_fill_random_bits(uint32_t* out, int64_t n, uint64_t seed, cudaStream_t stream);

}  // namespace quire::kernels
