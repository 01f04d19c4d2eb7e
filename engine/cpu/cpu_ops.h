#pragma once
// The per-token operations of the forward pass (docs/model.md §2) on fp32 buffers. `round` says
// whether results are rounded to bf16 the way torch's bf16 tensors are (Precision::bf16).

#include <cstdint>
#include <vector>

#include "cpu/thread_pool.h"
#include "quant/gptq_tensors.h"

namespace quire::cpu {

// Rounds every element to bf16 in place when `round` is set.
void round_rows(float* x, int64_t n, bool round);

// y[t, o] = sum_i x[t, i] * W[o, i]; W is bf16 [out, in] read in place; y rounded when `round`.
void matmul_bf16(ThreadPool& pool, const float* x, int64_t tokens, int64_t in, const uint16_t* w, int64_t out,
                 float* y, bool round);

// The same product with a GPTQ-quantized W (docs/quantization.md §4): each tile of weight rows is
// dequantized just before it is used (rounded to bf16 when `round`, as a bf16 weight would be), so
// no whole-layer copy is ever made.
void matmul_gptq(ThreadPool& pool, const float* x, int64_t tokens, const GptqTensors& w, float* y, bool round);

// RMSNorm over rows of width n (docs/model.md §2.2): y = round(round(x * rsqrt(mean(x^2) + eps)) * w).
void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, double eps, float* y, bool round);

// Non-interleaved RoPE on [tokens, heads, dim] at absolute positions pos0.. (docs/model.md §2.3).
void rope(float* x, int64_t tokens, int64_t heads, int64_t dim, int64_t pos0, double theta, bool round);

// out = round(round(silu(gate)) * up) elementwise (SwiGLU before down_proj).
void silu_mul(const float* gate, const float* up, int64_t n, float* out, bool round);

// x = round(x * round(sigmoid(g))) elementwise (o_gate / z_proj output gates).
void sigmoid_gate(float* x, const float* g, int64_t n, bool round);

// x = round(x + round(a * scale)) elementwise (residual with muP scale).
void residual_add(float* x, const float* a, float scale, int64_t n, bool round);

}  // namespace quire::cpu
