#pragma once
// The reference dequantization of GPTQ weights (docs/quantization.md §4), a tile of output rows at
// a time: what the CPU engine's GEMM runs on, and what tests and tools compare against. Never the
// whole layer at once unless asked for.

#include <cstdint>

#include "quant/gptq_tensors.h"

namespace quire {

// One weight, W[j, k] in fp32 (exact: an fp16 scale times a small integer).
float gptq_weight(const GptqTensors& t, int64_t j, int64_t k);

// Rows r0 .. r1-1 of W ([out, in], as a bf16 weight would be) into `dst` [(r1 - r0), in], fp32;
// each value rounded to bf16 when `round_to_bf16` (as a dequantize-to-bf16 kernel stores it).
void gptq_dequantize_rows(const GptqTensors& t, int64_t r0, int64_t r1, float* dst, bool round_to_bf16);

}  // namespace quire
