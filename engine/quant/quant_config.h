#pragma once
// QuantConfig: the `quantization_config` object of a GPTQ checkpoint's config.json, as GPTQModel and
// AutoGPTQ write it (docs/quantization.md §1), typed and validated field by field. Only what changes
// how the weights are stored is kept; quantization-time settings (damp_percent, true_sequential,
// meta, ...) are ignored.

#include <cstdint>
#include <string>
#include <vector>

#include "quant/dynamic_rules.h"

namespace quire {

class JsonValue;

enum class GptqFormat { gptq, gptq_v2 };  // "gptq" stores zero - 1, "gptq_v2" the zero itself

struct QuantConfig {
    int bits = 4;                 // 4 or 8
    int64_t group_size = 128;     // 128, 64, 32 or -1 (one group over all of in_features)
    bool sym = true;
    bool desc_act = false;
    GptqFormat format = GptqFormat::gptq;
    bool lm_head = false;         // a quantized lm_head is refused (docs/quantization.md §3)
    std::vector<DynamicRule> dynamic;  // in the order of the JSON object: the first match wins

    // The settings of one module after the `dynamic` rules (skipped: left in bf16).
    ModuleQuant for_module(const std::string& module_name) const;
    int zero_offset() const { return format == GptqFormat::gptq ? 1 : 0; }
};

const char* gptq_format_name(GptqFormat format);

// Reads `quantization_config`; every bad field adds one line to `problems`, prefixed
// "quantization_config.<field>: ".
QuantConfig parse_quant_config(const JsonValue& value, std::vector<std::string>& problems);

}  // namespace quire
