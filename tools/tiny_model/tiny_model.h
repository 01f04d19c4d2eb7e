#pragma once
// Writes a deterministic tiny MiniCPM-SALA checkpoint in exactly the official layout:
// config.json, sharded safetensors with model.safetensors.index.json, tokenizer.model (trained
// with the sentencepiece trainer on resources/tokenizer_corpus), tokenizer_config.json with the
// chat template, special_tokens_map.json, added_tokens.json and generation_config.json.

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"
#include "tiny_gptq.h"

namespace quire::tools {

struct TinyModelOptions {
    std::string out_dir;
    std::string corpus_dir;  // folder of .txt files to train the tokenizer on
    int64_t layers = 4;
    std::vector<int64_t> sparse_layers{0, 3};  // must include 0
    int64_t hidden = 128;
    int64_t intermediate = 256;
    int64_t heads = 4;
    int64_t kv_heads = 2;
    int64_t head_dim = 64;
    int64_t lightning_heads = 4;
    int64_t lightning_head_dim = 64;
    int64_t vocab = 1024;  // sentencepiece pieces + 8 added tokens at the top
    int64_t shards = 2;
    uint64_t seed = 1234;
    int64_t dense_len = 8192;  // the real value; tests may lower it only through their own configs
    bool tokenizer_legacy = false;
    TinyGptqOptions gptq;  // bits 0: bf16 weights
    // "float16": config.json says torch_dtype float16 (as GPTQModel often writes) and every
    // unquantized tensor is F16; its values are those fp16_values gives, so a twin with
    // fp16_values and "bfloat16" holds the very same numbers in BF16.
    std::string dtype = "bfloat16";
    bool fp16_values = false;  // every value one that both fp16 and bf16 represent exactly
};

Status write_tiny_model(const TinyModelOptions& options);

// The chat and tool tokens at the top of the vocabulary, in order (docs/model.md §7).
const std::vector<std::string>& added_token_names();

}  // namespace quire::tools
