#pragma once
// The MiniCPM-SALA forward pass, written once for every backend (docs/model.md §2).

#include <vector>

#include "model_config.h"
#include "sala_ops.h"

namespace quire {

// Runs one step (s.n tokens) through the model with `ops`, appending the logits of s.logit_rows to
// *logits (when given).
Status sala_forward(const ModelConfig& c, SalaOps& ops, const StepShape& s, std::vector<std::vector<float>>* logits);

}  // namespace quire
