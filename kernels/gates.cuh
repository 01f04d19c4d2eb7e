#pragma once
// The gates of the forward pass (docs/model.md §2.1, §2.4, §2.5) with the CPU engine's bf16
// rounding, shared by the element-wise kernels (norm_ops.cu) and the GEMVs that fuse them
// (gemv.cu), so that fused and separate results agree bit for bit.

#include "common.cuh"

namespace quire::kernels {

// bf16(sigmoid(g)): the factor the output gate multiplies by.
__device__ __forceinline__ float sigmoid_gate_factor(float g) { return round_bf(1.0f / (1.0f + expf(-g))); }

// bf16(silu(g)) * u, rounded to bf16 (SwiGLU of one element).
__device__ __forceinline__ float silu_mul_one(float g, float u) { return bf(to_bf(round_bf(g / (1.0f + expf(-g))) * u)); }

}  // namespace quire::kernels
