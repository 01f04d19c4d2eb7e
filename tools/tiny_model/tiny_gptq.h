#pragma once
// GPTQ variants of the tiny models (docs/quantization.md §6): the random bf16 weights are
// round-to-nearest quantized, group by group, into the Hugging Face GPTQ layout (qweight, qzeros,
// scales, g_idx), with desc_act's permuted g_idx when asked. The arithmetic here is written apart
// from the engine's unpacking (engine/quant/gptq_dequant.cpp) so that each checks the other.

#include <cstdint>
#include <string>
#include <vector>

#include "quant/dynamic_rules.h"

namespace quire::tools {

struct TinyGptqOptions {
    int bits = 0;                 // 0: no quantization (the ordinary bf16 tiny model)
    int64_t group_size = 128;     // -1: one group per row
    bool sym = true;
    bool desc_act = false;        // a permuted g_idx
    bool v2 = false;              // checkpoint_format gptq_v2 (zeros stored as they are)
    std::string dynamic;          // "": none; "sala": the real checkpoint's o_gate / z_proj skips;
                                  // "mixed": those skips plus 8-bit, group-64 down_proj overrides
    bool dequantized_twin = false;  // write bf16 weights equal to the dequantized ones, no quantization
};

// The "quantization_config" member (without the key), as GPTQModel 5.7 writes it.
std::string quantization_config_json(const TinyGptqOptions& o);

struct GptqTensorsBytes {
    std::string qweight, qzeros, scales, g_idx;  // little-endian tensor bytes
    std::vector<float> dequantized;              // W' [out, in] = scale * (q - zero), fp32
};

// RTN-quantizes W [out, in] (row-major fp32) with the module's settings.
GptqTensorsBytes rtn_quantize(const std::vector<float>& w, int64_t out, int64_t in, const ModuleQuant& q, bool v2,
                              uint64_t seed);

}  // namespace quire::tools
