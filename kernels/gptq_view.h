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

#include <cuda_fp16.h>

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
};

}  // namespace quire::kernels
