#include "model_tensors.h"

namespace quire {

int64_t TensorSpec::element_count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
    return "model.layers." + std::to_string(layer) + "." + suffix;
}

bool is_quantizable_linear(const TensorSpec& spec) {
    return spec.role == TensorRole::matrix && spec.name.rfind("model.layers.", 0) == 0;
}

std::string linear_module_name(const std::string& weight_name) {
    const std::string suffix = ".weight";
    if (weight_name.size() > suffix.size() && weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return weight_name.substr(0, weight_name.size() - suffix.size());
    return weight_name;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
    std::vector<TensorSpec> t;
    const int64_t h = c.hidden_size;
    auto matrix = [&](std::string name, int64_t rows, int64_t cols) {
        t.push_back({std::move(name), {rows, cols}, TensorRole::matrix});
    };
    auto vec = [&](std::string name, int64_t n) { t.push_back({std::move(name), {n}, TensorRole::norm_vector}); };

    matrix("model.embed_tokens.weight", c.vocab_size, h);
    for (int64_t l = 0; l < static_cast<int64_t>(c.mixer_types.size()); ++l) {
        auto name = [&](const char* s) { return layer_tensor_name(l, s); };
        vec(name("input_layernorm.weight"), h);
        vec(name("post_attention_layernorm.weight"), h);
        matrix(name("mlp.gate_proj.weight"), c.intermediate_size, h);
        matrix(name("mlp.up_proj.weight"), c.intermediate_size, h);
        matrix(name("mlp.down_proj.weight"), h, c.intermediate_size);
        if (c.mixer_types[static_cast<size_t>(l)] == MixerType::sparse) {
            const int64_t q = c.num_attention_heads * c.head_dim;
            const int64_t kv = c.num_key_value_heads * c.head_dim;
            matrix(name("self_attn.q_proj.weight"), q, h);
            matrix(name("self_attn.k_proj.weight"), kv, h);
            matrix(name("self_attn.v_proj.weight"), kv, h);
            matrix(name("self_attn.o_proj.weight"), h, q);
            if (c.attn_use_output_gate) matrix(name("self_attn.o_gate.weight"), q, h);
        } else {
            const int64_t q = c.lightning_nh * c.lightning_head_dim;
            const int64_t kv = c.lightning_nkv * c.lightning_head_dim;
            matrix(name("self_attn.q_proj.weight"), q, h);
            matrix(name("self_attn.k_proj.weight"), kv, h);
            matrix(name("self_attn.v_proj.weight"), kv, h);
            matrix(name("self_attn.o_proj.weight"), h, q);
            if (c.use_output_gate) matrix(name("self_attn.z_proj.weight"), q, h);
            if (c.qk_norm) {
                vec(name("self_attn.q_norm.weight"), c.lightning_head_dim);
                vec(name("self_attn.k_norm.weight"), c.lightning_head_dim);
            }
            if (c.use_output_norm) vec(name("self_attn.o_norm.weight"), q);
        }
    }
    vec("model.norm.weight", h);
    if (!c.tie_word_embeddings) matrix("lm_head.weight", c.vocab_size, h);
    return t;
}

}  // namespace quire
