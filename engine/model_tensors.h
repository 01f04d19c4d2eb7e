#pragma once
// The exact set of tensors a config implies (docs/model.md §6): names, shapes and dtypes.
// The checkpoint loader binds against this list; the tiny-model maker writes exactly this list.

#include <cstdint>
#include <string>
#include <vector>

#include "model_config.h"

namespace quire {

enum class TensorRole { matrix, norm_vector };

struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    TensorRole role = TensorRole::matrix;
    int64_t element_count() const;
};

std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

std::string layer_tensor_name(int64_t layer, const std::string& suffix);

// The linear layers a quantization_config may quantize: every matrix of a decoder layer (not the
// embedding, not the lm_head).
bool is_quantizable_linear(const TensorSpec& spec);
// "model.layers.3.mlp.up_proj.weight" -> "model.layers.3.mlp.up_proj" (the name GPTQ rules match).
std::string linear_module_name(const std::string& weight_name);

}  // namespace quire
