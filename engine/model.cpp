#include "model.h"

#include <filesystem>

#include "file_util.h"
#include "hash.h"

namespace fs = std::filesystem;

namespace quire {

Result<std::shared_ptr<const Model>> Model::load(const std::string& dir) {
    auto text = read_text_file((fs::path(dir) / "config.json").string(), 16 << 20);
    if (!text) return Status(ErrorCode::invalid_config, text.status().message());
    auto config = parse_model_config(text.value());
    if (!config) return config.status();
    auto ck = Checkpoint::open(dir, config.value());
    if (!ck) return ck.status();
    auto model = std::make_shared<Model>();
    model->dir_ = dir;
    model->config_ = config.value();
    auto checkpoint = std::make_shared<const Checkpoint>(std::move(ck.value()));
    // The config, the shards' headers and the weights' bytes: a state made with other weights of the
    // same shapes is never reused.
    const uint64_t parts[2] = {checkpoint->headers_hash(), checkpoint->content_hash()};
    model->fingerprint_ = hash64(text.value(), hash64(parts, sizeof parts));
    model->weights_ = bind_weights(checkpoint, model->config_);
    std::error_code ec;
    if (fs::exists(fs::path(dir) / "tokenizer.model", ec)) {
        auto tok = Tokenizer::load(dir, model->config_.vocab_size);
        if (!tok) return tok.status();
        model->tokenizer_ = std::move(tok.value());
    }
    return std::shared_ptr<const Model>(std::move(model));
}

Result<std::shared_ptr<const Model>> Model::synthetic(const std::string& dir) {
    auto text = read_text_file((fs::path(dir) / "config.json").string(), 16 << 20);
    if (!text) return Status(ErrorCode::invalid_config, text.status().message());
    auto config = parse_model_config(text.value());
    if (!config) return config.status();
    auto model = std::make_shared<Model>();
    model->dir_ = dir;
    model->config_ = config.value();
    model->fingerprint_ = hash64(text.value(), 0x5e1f5e1f5e1f5e1fULL);  // never equal to a real model's
    model->weights_ = synthetic_weights(model->config_);
    return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace quire
