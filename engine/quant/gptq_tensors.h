#pragma once
// GptqTensors: one GPTQ-quantized linear layer as it lies in the mapped checkpoint, validated
// (gptq_check.h), with every field of kernels/gptq_view.h's GptqView: a CUDA backend uploads the
// four arrays (sizes below, in bytes) and fills a GptqView with the device pointers and the same
// numbers. The semantics are written once, in docs/quantization.md §4:
//
//   W[j, k] = scales[g(k), j] * (q(k, j) - (z(g(k), j) + zero_offset)),  g(k) = g_idx[k] or k / group_size

#include <cstdint>

namespace quire {

struct GptqTensors {
    const int32_t* qweight = nullptr;  // [in / per_word, out], little-endian, 4-byte aligned
    const int32_t* qzeros = nullptr;   // [groups, out / per_word]
    const uint16_t* scales = nullptr;  // fp16 bits, [groups, out]
    const int32_t* g_idx = nullptr;    // [in]; null when g_idx[k] == k / group_size for every k
    int64_t in = 0;
    int64_t out = 0;
    int bits = 4;                      // 4 or 8
    int64_t group_size = 128;          // rows of `in` per group (in itself for a configured -1); a multiple of per_word
    int zero_offset = 1;               // 1: checkpoint_format gptq, 0: gptq_v2
    bool sym = true;                   // informational: the zeros in the file are what count
    bool synthetic = false;            // shapes only (a synthetic model): the backend draws the words

    bool present() const { return qweight != nullptr || synthetic; }

    int per_word() const { return 32 / bits; }
    uint32_t mask() const { return (1u << bits) - 1u; }
    int64_t groups() const { return in / group_size; }
    int64_t qweight_bytes() const { return in / per_word() * out * 4; }
    int64_t qzeros_bytes() const { return groups() * (out / per_word()) * 4; }
    int64_t scales_bytes() const { return groups() * out * 2; }
    int64_t g_idx_bytes() const { return g_idx ? in * 4 : 0; }
    int64_t bytes() const { return qweight_bytes() + qzeros_bytes() + scales_bytes() + g_idx_bytes(); }
};

}  // namespace quire
