#pragma once
// inspect_model: everything `quire model-info` reports about a model folder, and every problem
// found, one line each. Shared by the command line and the settings dialog.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model_config.h"

namespace quire {

struct ModelReport {
    std::string dir;
    std::optional<ModelConfig> config;
    bool weights_present = false;
    bool weights_valid = false;
    int64_t weight_bytes = 0;
    int64_t shard_count = 0;
    int64_t tensor_count = 0;
    int64_t quantized_linears = 0;  // GPTQ modules (when config.quantization)
    int64_t skipped_linears = 0;    // linear modules the dynamic rules leave in bf16
    int64_t quantized_bytes = 0;    // bytes of the quantized modules' qweight, qzeros, scales and g_idx
    int64_t converted_bytes = 0;    // a float16 checkpoint's F16 matrices: their bf16 copies in host memory
    bool tokenizer_valid = false;
    int64_t tokenizer_pieces = 0;
    bool add_bos = false;
    bool tokenizer_legacy = true;
    std::map<int32_t, std::string> special_tokens;
    std::vector<std::string> problems;
    bool ok() const { return problems.empty(); }
};

ModelReport inspect_model(const std::string& dir);
std::string format_model_report(const ModelReport& report);
// "18.95 GB" (decimal units, as model cards quote sizes)
std::string format_bytes(int64_t bytes);
// "9,477,203,968"
std::string with_thousands(int64_t n);

}  // namespace quire
