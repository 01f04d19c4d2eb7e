#pragma once
// Per-token operations of the forward pass on bf16 activations (docs/model.md §2), rounding exactly
// where the CPU engine's bf16 mode rounds. All sizes 64-bit; no allocation; errors returned.

#include <cuda_runtime.h>

#include <cstdint>

#include "row_source.h"

namespace quire::kernels {

// out[r, :] = bf16(bf16(x * rsqrt(mean(x^2) + eps)) * w)      x, out: [rows, n] bf16; w: [n] fp32
cudaError_t launch_rms_norm(const uint16_t* x, const float* w, int64_t rows, int64_t n, float eps, uint16_t* out,
                            cudaStream_t stream);

// Non-interleaved RoPE in place on x [tokens, heads, dim] bf16 at positions pos0 + t (fp32 angles).
cudaError_t launch_rope(uint16_t* x, int64_t tokens, int64_t heads, int64_t dim, int64_t pos0, float theta, cudaStream_t stream);

// Lightning's q/k path in one pass: per head row of dim elements, RMSNorm with q_norm (q) or
// k_norm (k), then (when rope) RoPE at positions pos0 + t, in place. The same results as
// launch_rms_norm on each of q and k followed by launch_rope on each. q, k: [tokens, heads, dim],
// dim 64 or 128.
cudaError_t launch_head_norm_rope(uint16_t* q, uint16_t* k, const float* q_norm, const float* k_norm, int64_t tokens, int64_t heads,
                                  int64_t dim, int64_t pos0, float theta, float eps, bool rope, cudaStream_t stream);

// out = bf16(bf16(silu(gate)) * up)
cudaError_t launch_silu_mul(const uint16_t* gate, const uint16_t* up, int64_t n, uint16_t* out, cudaStream_t stream);

// x = bf16(x * bf16(sigmoid(g)))
cudaError_t launch_sigmoid_gate(uint16_t* x, const uint16_t* g, int64_t n, cudaStream_t stream);

// x = bf16(x + bf16(a * scale))
cudaError_t launch_residual_add(uint16_t* x, const uint16_t* a, float scale, int64_t n, cudaStream_t stream);

// The residual add and the RMSNorm that follows it in one pass over each row of n:
//   x = bf16(x + bf16(a * scale));  out = RMSNorm(x; w)      (= launch_residual_add, launch_rms_norm)
// x, a: [rows, n]; out: [rows, n], not aliasing x.
cudaError_t launch_add_rms_norm(uint16_t* x, const uint16_t* a, float scale, const float* w, int64_t rows, int64_t n, float eps,
                                uint16_t* out, cudaStream_t stream);

// x = bf16(x * factor)
cudaError_t launch_scale(uint16_t* x, float factor, int64_t n, cudaStream_t stream);

// Compressed keys (docs/model.md §3.2): out[j] = bf16(mean(k[(first + j) * stride .. + kernel - 1]))
// for j < count; k: [n_keys, width] bf16, out: [count, width] bf16.
cudaError_t launch_compress_keys(const RowSource& k, int64_t width, int64_t kernel, int64_t stride, int64_t first,
                                 int64_t count, uint16_t* out, cudaStream_t stream);

}  // namespace quire::kernels
