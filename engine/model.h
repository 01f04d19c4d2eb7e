#pragma once
// Model: a validated model folder — config, mapped checkpoint, bound weights, tokenizer — and the
// fingerprint that ties saved states to exactly these weights.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "checkpoint.h"
#include "model_config.h"
#include "model_weights.h"
#include "status.h"
#include "tokenizer.h"

namespace quire {

class Model {
public:
    // Loads and validates everything; the tokenizer is optional for logits-only use.
    static Result<std::shared_ptr<const Model>> load(const std::string& dir);
    // The configuration of `dir`/config.json with no checkpoint: a backend that supports it draws
    // random weights (benchmarks of the real 9B configuration without writing 19 GB of files).
    static Result<std::shared_ptr<const Model>> synthetic(const std::string& dir);

    const std::string& dir() const { return dir_; }
    const ModelConfig& config() const { return config_; }
    const ModelWeights& weights() const { return weights_; }
    const Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
    // hash(config.json bytes) combined with the hash of every shard header.
    uint64_t fingerprint() const { return fingerprint_; }
    bool is_synthetic() const { return !weights_.checkpoint; }
    // Called by a backend that has copied the weights elsewhere (the GPU): the mapped shards' pages
    // leave this process's resident set. Reading the weights afterwards still works.
    void release_resident_weights() const {
        if (weights_.checkpoint) weights_.checkpoint->release_resident_pages();
    }

private:
    std::string dir_;
    ModelConfig config_;
    ModelWeights weights_;
    std::optional<Tokenizer> tokenizer_;
    uint64_t fingerprint_ = 0;
};

}  // namespace quire
