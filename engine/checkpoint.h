#pragma once
// Checkpoint: opens a model folder in the official layout (model.safetensors.index.json + shards,
// or a single model.safetensors), maps every shard, validates each by the safetensors rules and
// binds every tensor the config implies by exact name, shape and dtype (docs/model.md §6).

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mapped_file.h"
#include "model_config.h"
#include "quant/gptq_tensors.h"
#include "safetensors.h"
#include "status.h"

namespace quire {

struct TensorRef {
    const uint8_t* data = nullptr;
    DType dtype = DType::bf16;
    std::vector<int64_t> shape;
    int64_t bytes = 0;
    std::string shard;
};

class Checkpoint {
public:
    // Opens and validates; on failure the message lists every problem found, one per line.
    static Result<Checkpoint> open(const std::string& model_dir, const ModelConfig& config);

    const TensorRef* find(const std::string& name) const;
    const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
    int64_t total_bytes() const { return total_bytes_; }
    int64_t shard_count() const { return static_cast<int64_t>(shards_.size()); }
    // Hash of every shard's header bytes: identifies the weights without reading them.
    uint64_t headers_hash() const { return headers_hash_; }
    // A hash of every shard's bytes (weights_hash.h: cached by path, size and modification time).
    uint64_t content_hash() const;
    // Every shard's MappedFile::release_resident_pages().
    void release_resident_pages() const;

    // A GPTQ-quantized linear module's validated tensors ("model.layers.3.mlp.up_proj"), or null when
    // the module is stored in bf16 (docs/quantization.md).
    const GptqTensors* find_gptq(const std::string& module) const;
    const std::map<std::string, GptqTensors>& gptq_modules() const { return gptq_; }
    // Linear modules a quantization_config leaves in bf16 (by its dynamic rules).
    int64_t skipped_linear_count() const { return skipped_linears_; }

private:
    void check_gptq_module(const std::string& module, int64_t in, int64_t out, const ModuleQuant& q,
                           std::set<std::string>& expected_names, std::vector<std::string>& problems);

    std::vector<std::shared_ptr<MappedFile>> shards_;
    std::map<std::string, TensorRef> tensors_;
    int64_t total_bytes_ = 0;
    uint64_t headers_hash_ = 0;
    std::map<std::string, GptqTensors> gptq_;
    int64_t skipped_linears_ = 0;
    int config_zero_offset_ = 1;
};

// The dtype of a checkpoint's unquantized tensors, from config.json's dtype (validated to be
// "bfloat16" or "float16"): BF16 or F16.
DType checkpoint_dtype(const ModelConfig& config);

// The shard files a model folder names: from the index when present, else model.safetensors.
// Shard names that would leave the folder are refused.
struct ShardList {
    std::vector<std::string> files;                   // absolute paths, in a stable order
    std::map<std::string, std::string> weight_map;    // tensor -> shard path (empty for a single file)
};
Result<ShardList> find_shards(const std::string& model_dir);

}  // namespace quire
