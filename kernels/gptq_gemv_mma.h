#pragma once
// The 4-bit decode GEMV on tensor cores (sm_80+), the path launch_gptq_gemv_multi takes for 4-bit
// layers with contiguous groups (gptq_gemv.h). Each packed word's nibbles become exact bf16 values of
// (q - zero) with a shift, one LOP3 and one subtraction per pair, and mma.sync multiplies them with
// the token rows in fp32: a few instructions per 8 weights where the CUDA-core loop, which was bound
// by issuing them, spent ~5 per weight (docs/benchmarks.md).
// The scale is applied once per group to the fp32 sums: the result is the exact dot product up to
// fp32 summation order, as in the CUDA-core kernel.

#include <cuda_runtime.h>

#include <cstdint>

#include "gptq_gemv.h"

namespace quire::kernels {

// Whether the tensor-core kernel takes these layers: 4 bits, no g_idx, `in` and group_size multiples
// of 128, every `out` a multiple of 32, scales 8-byte aligned, an sm_80+ device.
bool gptq_gemv_mma_applies(const GptqGemvLayer* layers, int count);

// At most this many parts of the input per tile (more cost more in the final sums than they gain).
constexpr int kGptqGemvMaxSplits = 4;

// Floats and tickets of the GptqGemvScratch that lets every launch of up to `max_cols` output columns
// (all layers of the launch together) and kGptqGemvMaxTokens tokens split.
constexpr int64_t gptq_gemv_partial_floats(int64_t max_cols) { return kGptqGemvMaxSplits * kGptqGemvMaxTokens * max_cols; }
constexpr int64_t gptq_gemv_ticket_count(int64_t max_cols) { return (max_cols + 31) / 32; }

// scratch: room to split the input of small layers over several CTAs (null: never split);
// max_splits and min_blocks (CTAs per SM the registers are limited for) are for the measurement; the
// engine uses the defaults (measured on the H200, docs/benchmarks.md).
cudaError_t launch_gptq_gemv_mma(const GptqGemvLayer* layers, int count, const uint16_t* x, int64_t tokens, cudaStream_t stream,
                                 const GptqGemvScratch* scratch, int max_splits = kGptqGemvMaxSplits, int min_blocks = 4);

// A bf16 layer (w: [rows, cols] row-major, cols = the 4-bit layers' in) that reads the same x, in the
// same launch: its CTAs follow the tiles and stream their weights beside them, one warp per output
// row with gemv.h's arithmetic (gemv_row.cuh), so out is bit for bit launch_gemv_bf16's. One token
// (decode). A 4-bit checkpoint keeps o_gate / z_proj in bf16: this reads them with q/k/v in one
// launch instead of a second GEMV after it.
struct GptqGemvBf16 {
    const uint16_t* w = nullptr;
    int64_t rows = 0, cols = 0;
    uint16_t* out = nullptr;
};
bool gptq_gemv_mma_bf16_applies(const GptqGemvLayer* layers, int count, const GptqGemvBf16& bf16, int64_t tokens);
cudaError_t launch_gptq_gemv_mma_with_bf16(const GptqGemvLayer* layers, int count, const GptqGemvBf16& bf16, const uint16_t* x, int64_t tokens,
                                           cudaStream_t stream, const GptqGemvScratch* scratch);

// Fused forms for decode, with the arithmetic of the separate kernels (gates.cuh), so fused and
// separate results agree bit for bit:
//  - the output gate on the input: y = W · bf16(x · bf16(sigmoid(gate))), x and gate [tokens, in];
//  - SwiGLU of the MLP's gate and up layers (same in and out): y = bf16(silu(bf16(Wg·x)) · bf16(Wu·x)).
// cudaErrorInvalidValue where the tensor-core kernel does not apply (or, for the gated input, the
// staged input of one CTA would pass 48 KB); the caller then runs the separate kernels.
bool gptq_gemv_mma_gated_input_applies(const GptqView& w, int64_t tokens, const GptqGemvScratch* scratch);
bool gptq_gemv_mma_swiglu_applies(const GptqView& gate, const GptqView& up, int64_t tokens);
cudaError_t launch_gptq_gemv_mma_gated_input(const GptqView& w, const uint16_t* x, const uint16_t* gate, int64_t tokens, uint16_t* y,
                                             cudaStream_t stream, const GptqGemvScratch* scratch);
// min_blocks (4, or 3 for 80 registers without spills) is for the measurement.
cudaError_t launch_gptq_gemv_mma_swiglu(const GptqView& gate, const GptqView& up, const uint16_t* x, int64_t tokens, uint16_t* y,
                                        cudaStream_t stream, const GptqGemvScratch* scratch, int min_blocks = 4);

}  // namespace quire::kernels
