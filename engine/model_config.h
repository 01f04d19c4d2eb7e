#pragma once
// ModelConfig: every field of MiniCPM-SALA's config.json (docs/model.md §1), typed, with defaults for
// fields a real config may omit, and validation that names the offending field.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quant/quant_config.h"
#include "status.h"

namespace quire {

enum class MixerType { sparse, lightning };  // "minicpm4" and "lightning-attn"

struct SparseConfig {
    int64_t kernel_size = 32;    // C1 window (tokens)
    int64_t kernel_stride = 16;  // C1 stride
    int64_t init_blocks = 1;     // blocks always selected from the start
    int64_t block_size = 64;     // selection granularity and KV block size
    int64_t window_size = 2048;  // local window in tokens (window_size / block_size blocks)
    int64_t topk = 64;           // selected blocks beyond the local ones
    bool use_nope = false;
    int64_t dense_len = 8192;    // sequences shorter than this use dense attention

    int64_t local_blocks() const { return window_size / block_size; }
    int64_t effective_topk() const { return topk + local_blocks(); }
    // C2 tier: kernel and stride scaled by block_size / kernel_stride (4 in the real model).
    int64_t c2_factor() const { return block_size / kernel_stride; }
    int64_t c2_kernel() const { return kernel_size * c2_factor(); }
    int64_t c2_stride() const { return kernel_stride * c2_factor(); }
};

struct ModelConfig {
    std::vector<std::string> architectures;
    std::string model_type;
    std::string dtype = "bfloat16";
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;
    int64_t head_dim = 0;  // default hidden_size / num_attention_heads
    int64_t lightning_nh = 0;        // default num_attention_heads
    int64_t lightning_nkv = 0;       // default lightning_nh
    int64_t lightning_head_dim = 0;  // default head_dim
    std::string lightning_scale = "1/sqrt(d)";
    bool lightning_use_rope = true;
    bool attn_use_rope = false;
    bool qk_norm = true;
    bool use_output_norm = true;
    bool use_output_gate = true;
    bool attn_use_output_gate = true;
    bool attention_bias = false;
    double attention_dropout = 0.0;
    std::string hidden_act = "silu";
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    bool rope_scaling_null = true;
    int64_t max_position_embeddings = 524288;
    double scale_emb = 1.0;
    double scale_depth = 1.0;
    int64_t dim_model_base = 0;  // default hidden_size (logit divisor 1)
    int64_t mup_denominator = 0;  // present in the real config, unused by the forward pass
    bool tie_word_embeddings = false;
    double initializer_range = 0.0;
    int64_t pretraining_tp = 1;
    bool use_cache = true;
    bool shift_labels = false;
    int64_t bos_token_id = 1;
    std::vector<int64_t> eos_token_ids{2};
    int64_t pad_token_id = -1;
    std::string transformers_version;
    std::vector<MixerType> mixer_types;
    SparseConfig sparse;
    // GPTQ weights (docs/quantization.md): absent for a bf16 checkpoint.
    std::optional<QuantConfig> quantization;

    // Derived values (docs/model.md §1 "Derived constants").
    double residual_scale() const;  // scale_depth / sqrt(num_hidden_layers)
    double logit_divisor() const;   // hidden_size / dim_model_base
    int64_t gqa_group() const { return num_attention_heads / num_key_value_heads; }
    int64_t sparse_layer_count() const;
    int64_t lightning_layer_count() const;
    int64_t parameter_count() const;  // from the tensor catalogue
};

// Parses config.json text. On failure the Status lists every problem, one per line, each naming
// its field ("num_key_value_heads: ...").
Result<ModelConfig> parse_model_config(std::string_view json_text);
Result<ModelConfig> load_model_config(const std::string& path);

const char* mixer_type_name(MixerType type);

}  // namespace quire
