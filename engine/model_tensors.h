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

}  // namespace quire
