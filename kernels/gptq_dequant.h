#pragma once
// A GPTQ layer's weights expanded to bf16 (prefill: cuBLAS then multiplies the scratch):
//   out[j, k] = bf16( scales[g(k), j] * (q(k, j) - (z(g(k), j) + zero_offset)) )
// with the layout and formula of gptq_view.h, 4 or 8 bits, contiguous groups or g_idx (desc_act).
// The product is exact in fp32 (an fp16 scale times a small integer), so the one rounding is the
// final one to bf16, as in the CPU engine.

#include <cuda_runtime.h>

#include <cstdint>

#include "gptq_view.h"

namespace quire::kernels {

// out: [w.out, w.in] bf16 row-major, 16-byte aligned. cudaErrorInvalidValue when the view is not
// usable (gptq_check.h) or the output is misaligned; nothing is launched then.
cudaError_t launch_gptq_dequant(const GptqView& w, uint16_t* out, cudaStream_t stream);

// The checkpoint's qweight [rows, out] (rows = in / per_word) rewritten into the tiled layout of
// gptq_view.h at dst (same size, not overlapping src). cudaErrorInvalidValue unless out % 32 == 0.
cudaError_t launch_gptq_tile_qweight(const int32_t* src, int32_t* dst, int64_t rows, int64_t out, cudaStream_t stream);

}  // namespace quire::kernels
