#pragma once
// The tensors a GPTQ-quantized linear module stores in the Hugging Face layout
// (docs/quantization.md §3): names, dtypes and shapes from the module's shape and settings, the
// checks a module's settings must pass for its shape, and the checks of the stored g_idx values.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/dynamic_rules.h"
#include "quant/gptq_tensors.h"
#include "safetensors.h"

namespace quire {

struct GptqTensorSpec {
    std::string name;             // "<module>.qweight", ...
    DType dtype = DType::i32;
    std::vector<int64_t> shape;
};

// qweight, qzeros, scales, g_idx, in that order. `in`/`out` are the bf16 weight's [out, in].
std::array<GptqTensorSpec, 4> gptq_tensor_specs(const std::string& module, int64_t in, int64_t out, const ModuleQuant& q);

// The group size in rows of `in`: the configured one, or `in` for -1.
int64_t effective_group_size(const ModuleQuant& q, int64_t in);

// One line per way the settings do not fit the shape (group_size must divide in_features; the
// packing needs in_features and out_features to be multiples of 32 / bits).
void check_module_shape(const std::string& module, int64_t in, int64_t out, const ModuleQuant& q,
                        std::vector<std::string>& problems);

// Every g_idx value must name a group (0 .. groups-1): the first bad index is reported with its
// value. `trivial` is set when g_idx[k] == k / group_size for every k (contiguous groups).
// The values are read with memcpy: `bytes` need not be aligned.
bool check_g_idx(const uint8_t* bytes, int64_t in, int64_t group_size, const std::string& name,
                 std::vector<std::string>& problems, bool* trivial);

// Every scale must be finite (an inf or NaN scale would turn a whole group into NaN logits): the
// first bad one is reported as scales[g, j] with its value.
bool check_scales(const uint8_t* bytes, int64_t groups, int64_t out, const std::string& name,
                  std::vector<std::string>& problems);

}  // namespace quire
