#pragma once
// quire-bench's decode GEMV line: the bf16, INT8 and INT4 (GPTQ) GEMV of the model's linear-layer
// shapes at one token, against the card's copy bandwidth.

#include "model_config.h"

namespace quire::bench {

// Prints one table row per shape; copy_bandwidth in bytes (read + written) per second.
void print_gemv_bandwidth(const ModelConfig& config, double copy_bandwidth);

}  // namespace quire::bench
