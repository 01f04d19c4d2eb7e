#pragma once
// One GPTQ-quantized linear layer as it lies in device memory, in the Hugging Face GPTQ layout
// (AutoGPTQ / GPTQModel; docs/quantization.md): y = x . W^T with W [out, in] given by
//
//   q(k, j)  = (qweight[k / per_word, j] >> (bits * (k % per_word))) & mask      packed along `in`
//   z(g, j)  = (qzeros[g, j / per_word] >> (bits * (j % per_word))) & mask       packed along `out`
//   W[j, k]  = scales[g_idx[k], j] * (q(k, j) - (z(g_idx[k], j) + zero_offset))
//
// with per_word = 32 / bits, mask = 2^bits - 1, and zero_offset 1 for checkpoint_format "gptq"
// (which stores zero - 1) and 0 for "gptq_v2". g_idx is null when g_idx[k] == k / group_size for
// every k (desc_act off), which lets kernels take the contiguous-group fast path.
//
// The CUDA engine keeps qweight tiled (`tiled`): [out / 32][in / per_word][32], each run of 32
// columns stored whole, one packed row after another. A decode GEMV walks down the rows of its
// columns, which in the checkpoint's layout are `out` words apart (16-64 KB strides that crowd a few
// memory channels); tiled, a CTA's words are one contiguous stretch (docs/quantization.md).

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quire::kernels {

struct GptqView {
    const int32_t* qweight = nullptr;  // [in / per_word, out]
    const int32_t* qzeros = nullptr;   // [groups, out / per_word]
    const __half* scales = nullptr;    // [groups, out]
    const int32_t* g_idx = nullptr;    // [in], or null for contiguous groups
    int64_t in = 0;
    int64_t out = 0;
    int bits = 4;                      // 4 or 8
    int64_t group_size = 128;          // rows of `in` per group (in itself for group_size -1)
    int zero_offset = 1;               // 1: gptq, 0: gptq_v2
    bool tiled = false;                // qweight in 32-column tiles (above); needs out % 32 == 0
};

constexpr int64_t kGptqTileCols = 32;

// Where qweight's word (packed row `row`, column `col`) lies: word_base(col) + row * row_stride.
__host__ __device__ inline int64_t gptq_word_base(bool tiled, int64_t rows, int64_t col) {
    return tiled ? (col / kGptqTileCols) * rows * kGptqTileCols + col % kGptqTileCols : col;
}
__host__ __device__ inline int64_t gptq_row_stride(bool tiled, int64_t out) { return tiled ? kGptqTileCols : out; }

}  // namespace quire::kernels
