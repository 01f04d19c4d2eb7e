#pragma once
// y[t, r] = bf16( sum_c x[t, c] * W[r, c] ) for a few tokens (decode): the weights are streamed once
// with 16-byte loads, fp32 accumulation. cuBLAS's GEMM at n = 1 reaches ~70% of the memory
// bandwidth on an H100; this reaches more (docs/benchmarks.md).

#include <cuda_runtime.h>

#include <cstdint>

namespace quire::kernels {

constexpr int64_t kGemvMaxTokens = 4;
constexpr int kGemvMaxOutputs = 4;

// W: [rows, cols] bf16 row-major, x: [tokens, cols], y: [tokens, rows]; cols a multiple of 8 and
// 16-byte aligned rows; tokens <= kGemvMaxTokens. The kernels read their first weights before they
// wait for the kernel before them (programmatic dependent launch): W must not be written by the
// kernel just before the GEMV on its stream.
cudaError_t launch_gemv_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, uint16_t* y,
                             cudaStream_t stream);

// Several linear layers that read the same x and whose weights lie one after another in memory
// ([sum of rows, cols]), in one pass over the weights: output i gets the next outputs[i].rows rows,
// as y_i [tokens, rows_i]. Fewer launches and longer streams than one GEMV per layer (decode).
struct GemvOutput {
    int64_t rows = 0;
    uint16_t* out = nullptr;
};
cudaError_t launch_gemv_bf16_multi(const uint16_t* w, int64_t cols, const uint16_t* x, int64_t tokens, const GemvOutput* outputs, int count,
                                   cudaStream_t stream);

// One token (decode) with the gate around a projection fused in, bit for bit the separate kernels'
// results (norm_ops.h rounds the same way):
// y = W . bf16(x * bf16(sigmoid(gate)))  (launch_sigmoid_gate on x, then the GEMV); cols <= 24576.
cudaError_t launch_gemv_bf16_gated_input(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, const uint16_t* gate, uint16_t* y,
                                         cudaStream_t stream);
// W = [gate; up], 2 * rows rows stored one after the other: y = bf16(bf16(silu(gate . x)) * (up . x)),
// each projection rounded to bf16 first (the GEMV of both, then launch_silu_mul). y: [rows].
cudaError_t launch_gemv_bf16_swiglu(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, uint16_t* y, cudaStream_t stream);

// The kernel shape the launches above use, for measuring (test_gpu_decode's bandwidth check):
// 0 the default, 1 .. gemv_variant_count() - 1 batched loads with other block sizes and L2 hints.
// Process-wide; not for concurrent use.
int gemv_variant_count();
void set_gemv_variant(int variant);

}  // namespace quire::kernels
