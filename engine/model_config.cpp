#include "model_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "file_util.h"
#include "json.h"
#include "model_tensors.h"
#include "quant/gptq_catalogue.h"

namespace quire {

const char* mixer_type_name(MixerType type) {
    return type == MixerType::sparse ? "minicpm4" : "lightning-attn";
}

double ModelConfig::residual_scale() const {
    return scale_depth / std::sqrt(static_cast<double>(num_hidden_layers));
}

double ModelConfig::logit_divisor() const {
    return static_cast<double>(hidden_size) / static_cast<double>(dim_model_base);
}

int64_t ModelConfig::sparse_layer_count() const {
    int64_t n = 0;
    for (auto t : mixer_types) n += t == MixerType::sparse;
    return n;
}

int64_t ModelConfig::lightning_layer_count() const {
    return static_cast<int64_t>(mixer_types.size()) - sparse_layer_count();
}

int64_t ModelConfig::parameter_count() const {
    int64_t total = 0;
    for (const auto& t : expected_tensors(*this)) total += t.element_count();
    return total;
}

namespace {

// Reads typed fields from a JSON object and records one problem line per bad field.
class FieldReader {
public:
    FieldReader(const JsonValue& obj, std::string prefix, std::vector<std::string>& problems)
        : obj_(obj), prefix_(std::move(prefix)), problems_(problems) {}

    void problem(std::string_view field, const std::string& what) {
        problems_.push_back(prefix_ + std::string(field) + ": " + what);
    }
    const JsonValue* get(std::string_view field) const {
        const JsonValue* v = obj_.find(field);
        return (v && !v->is_null()) ? v : nullptr;
    }
    void integer(std::string_view field, int64_t& out, bool required = false) {
        const JsonValue* v = get(field);
        if (!v) {
            if (required) problem(field, "missing (required)");
            return;
        }
        if (!v->is_integer()) {
            // 1e6-style integers written as floats are accepted when exact.
            if (v->is_number() && std::floor(v->as_double()) == v->as_double() && std::fabs(v->as_double()) < 9e15) {
                out = static_cast<int64_t>(v->as_double());
                return;
            }
            problem(field, std::string("must be an integer, got ") + JsonValue::type_name(v->type()));
            return;
        }
        out = v->as_int();
    }
    void number(std::string_view field, double& out) {
        const JsonValue* v = get(field);
        if (!v) return;
        if (!v->is_number()) {
            problem(field, std::string("must be a number, got ") + JsonValue::type_name(v->type()));
            return;
        }
        out = v->as_double();
    }
    void boolean(std::string_view field, bool& out) {
        const JsonValue* v = get(field);
        if (!v) return;
        if (!v->is_bool()) {
            problem(field, std::string("must be true or false, got ") + JsonValue::type_name(v->type()));
            return;
        }
        out = v->as_bool();
    }
    void string(std::string_view field, std::string& out) {
        const JsonValue* v = get(field);
        if (!v) return;
        if (!v->is_string()) {
            problem(field, std::string("must be a string, got ") + JsonValue::type_name(v->type()));
            return;
        }
        out = v->as_string();
    }

private:
    const JsonValue& obj_;
    std::string prefix_;
    std::vector<std::string>& problems_;
};

void read_sparse_config(const JsonValue& v, SparseConfig& s, std::vector<std::string>& problems) {
    if (!v.is_object()) {
        problems.push_back("sparse_config: must be an object");
        return;
    }
    FieldReader r(v, "sparse_config.", problems);
    r.integer("kernel_size", s.kernel_size);
    r.integer("kernel_stride", s.kernel_stride);
    r.integer("init_blocks", s.init_blocks);
    r.integer("block_size", s.block_size);
    r.integer("window_size", s.window_size);
    r.integer("topk", s.topk);
    r.boolean("use_nope", s.use_nope);
    r.integer("dense_len", s.dense_len);
}

void read_fields(const JsonValue& root, ModelConfig& c, std::vector<std::string>& problems) {
    FieldReader r(root, "", problems);
    if (const JsonValue* a = r.get("architectures")) {
        if (!a->is_array()) r.problem("architectures", "must be a list of strings");
        else
            for (const auto& item : a->items()) {
                if (item.is_string()) c.architectures.push_back(item.as_string());
                else r.problem("architectures", "must be a list of strings");
            }
    }
    r.string("model_type", c.model_type);
    r.string("torch_dtype", c.dtype);  // older name of "dtype"
    r.string("dtype", c.dtype);
    r.integer("vocab_size", c.vocab_size, true);
    r.integer("hidden_size", c.hidden_size, true);
    r.integer("intermediate_size", c.intermediate_size, true);
    r.integer("num_hidden_layers", c.num_hidden_layers, true);
    r.integer("num_attention_heads", c.num_attention_heads, true);
    r.integer("num_key_value_heads", c.num_key_value_heads);
    r.integer("head_dim", c.head_dim);
    r.integer("lightning_nh", c.lightning_nh);
    r.integer("lightning_nkv", c.lightning_nkv);
    r.integer("lightning_head_dim", c.lightning_head_dim);
    r.string("lightning_scale", c.lightning_scale);
    r.boolean("lightning_use_rope", c.lightning_use_rope);
    r.boolean("attn_use_rope", c.attn_use_rope);
    r.boolean("qk_norm", c.qk_norm);
    r.boolean("use_output_norm", c.use_output_norm);
    r.boolean("use_output_gate", c.use_output_gate);
    r.boolean("attn_use_output_gate", c.attn_use_output_gate);
    r.boolean("attention_bias", c.attention_bias);
    r.number("attention_dropout", c.attention_dropout);
    r.string("hidden_act", c.hidden_act);
    r.number("rms_norm_eps", c.rms_norm_eps);
    r.number("rope_theta", c.rope_theta);
    if (root.find("rope_scaling") && !root.find("rope_scaling")->is_null()) c.rope_scaling_null = false;
    r.integer("max_position_embeddings", c.max_position_embeddings);
    r.number("scale_emb", c.scale_emb);
    r.number("scale_depth", c.scale_depth);
    r.integer("dim_model_base", c.dim_model_base);
    r.integer("mup_denominator", c.mup_denominator);
    r.boolean("tie_word_embeddings", c.tie_word_embeddings);
    r.number("initializer_range", c.initializer_range);
    r.integer("pretraining_tp", c.pretraining_tp);
    r.boolean("use_cache", c.use_cache);
    r.boolean("shift_labels", c.shift_labels);
    r.integer("bos_token_id", c.bos_token_id);
    if (const JsonValue* e = r.get("eos_token_id")) {
        c.eos_token_ids.clear();
        if (e->is_integer()) c.eos_token_ids.push_back(e->as_int());
        else if (e->is_array()) {
            for (const auto& item : e->items()) {
                if (item.is_integer()) c.eos_token_ids.push_back(item.as_int());
                else r.problem("eos_token_id", "must be an integer or a list of integers");
            }
        } else {
            r.problem("eos_token_id", "must be an integer or a list of integers");
        }
    }
    r.integer("pad_token_id", c.pad_token_id);
    r.string("transformers_version", c.transformers_version);
    if (const JsonValue* m = r.get("mixer_types")) {
        if (!m->is_array()) {
            r.problem("mixer_types", "must be a list");
        } else {
            for (size_t i = 0; i < m->items().size(); ++i) {
                const auto& item = m->items()[i];
                const std::string name = item.is_string() ? item.as_string() : std::string();
                if (name == "minicpm4") c.mixer_types.push_back(MixerType::sparse);
                else if (name == "lightning-attn" || name == "lightning_attn" || name == "lightning")
                    c.mixer_types.push_back(MixerType::lightning);
                else
                    r.problem("mixer_types", "entry " + std::to_string(i) + " is unknown mixer type '" + name +
                                                 "' (expected \"minicpm4\" or \"lightning-attn\")");
            }
        }
    } else {
        r.problem("mixer_types", "missing (required: one entry per layer)");
    }
    if (const JsonValue* s = r.get("sparse_config")) read_sparse_config(*s, c.sparse, problems);
    if (const JsonValue* q = r.get("quantization_config")) c.quantization = parse_quant_config(*q, problems);
}

// Every linear module the quantization_config quantizes must fit its settings (group_size dividing
// in_features, whole int32 words).
void validate_quantization(const ModelConfig& c, std::vector<std::string>& problems) {
    if (!c.quantization) return;
    for (const TensorSpec& spec : expected_tensors(c)) {
        if (!is_quantizable_linear(spec)) continue;
        const std::string module = linear_module_name(spec.name);
        const ModuleQuant q = c.quantization->for_module(module);
        if (q.quantized) check_module_shape(module, spec.shape[1], spec.shape[0], q, problems);
    }
}

void fill_defaults(ModelConfig& c) {
    if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
    if (c.head_dim == 0 && c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
    if (c.lightning_nh == 0) c.lightning_nh = c.num_attention_heads;
    if (c.lightning_nkv == 0) c.lightning_nkv = c.lightning_nh;
    if (c.lightning_head_dim == 0) c.lightning_head_dim = c.head_dim;
    if (c.dim_model_base == 0) c.dim_model_base = c.hidden_size;
}

void validate(const ModelConfig& c, std::vector<std::string>& problems) {
    auto positive = [&](const char* field, int64_t v) {
        if (v <= 0) problems.push_back(std::string(field) + ": must be positive, got " + std::to_string(v));
    };
    positive("vocab_size", c.vocab_size);
    positive("hidden_size", c.hidden_size);
    positive("intermediate_size", c.intermediate_size);
    positive("num_hidden_layers", c.num_hidden_layers);
    positive("num_attention_heads", c.num_attention_heads);
    positive("num_key_value_heads", c.num_key_value_heads);
    positive("head_dim", c.head_dim);
    positive("lightning_nh", c.lightning_nh);
    positive("lightning_nkv", c.lightning_nkv);
    positive("lightning_head_dim", c.lightning_head_dim);
    positive("dim_model_base", c.dim_model_base);
    if (!problems.empty()) return;  // the checks below divide by these

    if (static_cast<int64_t>(c.mixer_types.size()) != c.num_hidden_layers && !c.mixer_types.empty())
        problems.push_back("mixer_types: has " + std::to_string(c.mixer_types.size()) +
                           " entries but num_hidden_layers is " + std::to_string(c.num_hidden_layers));
    if (c.num_attention_heads % c.num_key_value_heads != 0)
        problems.push_back("num_key_value_heads: " + std::to_string(c.num_key_value_heads) +
                           " does not divide num_attention_heads " + std::to_string(c.num_attention_heads));
    if (c.lightning_nkv != c.lightning_nh)
        problems.push_back("lightning_nkv: must equal lightning_nh (" + std::to_string(c.lightning_nh) +
                           "); Lightning layers have no grouped heads");
    if (c.head_dim % 16 != 0 || c.head_dim > 256)
        problems.push_back("head_dim: " + std::to_string(c.head_dim) + " is not a multiple of 16 up to 256");
    if (c.lightning_head_dim % 16 != 0 || c.lightning_head_dim > 256)
        problems.push_back("lightning_head_dim: " + std::to_string(c.lightning_head_dim) +
                           " is not a multiple of 16 up to 256");
    if (c.hidden_size % c.dim_model_base != 0)
        problems.push_back("dim_model_base: " + std::to_string(c.dim_model_base) + " does not divide hidden_size");
    if (c.lightning_scale != "1/sqrt(d)")
        problems.push_back("lightning_scale: only \"1/sqrt(d)\" is supported, got \"" + c.lightning_scale + "\"");
    if (c.attn_use_rope) problems.push_back("attn_use_rope: sparse layers with RoPE are not supported (the model uses NoPE)");
    if (c.attention_bias) problems.push_back("attention_bias: biases are not supported (the model has none)");
    if (c.hidden_act != "silu") problems.push_back("hidden_act: only \"silu\" is supported, got \"" + c.hidden_act + "\"");
    if (!c.rope_scaling_null) problems.push_back("rope_scaling: only null (plain RoPE) is supported");
    if (!(c.rms_norm_eps > 0.0) || c.rms_norm_eps > 1e-2) problems.push_back("rms_norm_eps: must be in (0, 0.01]");
    if (!(c.rope_theta > 1.0)) problems.push_back("rope_theta: must be greater than 1");
    if (!(c.scale_emb > 0.0)) problems.push_back("scale_emb: must be positive");
    if (!(c.scale_depth > 0.0)) problems.push_back("scale_depth: must be positive");
    if (c.dtype != "bfloat16" && c.dtype != "float16")
        problems.push_back("dtype: only \"bfloat16\" and \"float16\" checkpoints are supported, got \"" + c.dtype + "\"");
    if (c.bos_token_id < 0 || c.bos_token_id >= c.vocab_size)
        problems.push_back("bos_token_id: " + std::to_string(c.bos_token_id) + " is outside the vocabulary");
    for (int64_t e : c.eos_token_ids)
        if (e < 0 || e >= c.vocab_size)
            problems.push_back("eos_token_id: " + std::to_string(e) + " is outside the vocabulary");
    if (c.eos_token_ids.empty()) problems.push_back("eos_token_id: at least one end token is required");
    if (!c.mixer_types.empty() && c.mixer_types[0] != MixerType::sparse)
        problems.push_back("mixer_types: layer 0 must be \"minicpm4\" (its KV length counts the tokens seen)");

    // The sparse kernels are written for the InfLLM-v2 geometry of the real model (docs/model.md §3).
    const SparseConfig& s = c.sparse;
    if (s.block_size != 64) problems.push_back("sparse_config.block_size: must be 64, got " + std::to_string(s.block_size));
    if (s.kernel_stride != 16) problems.push_back("sparse_config.kernel_stride: must be 16, got " + std::to_string(s.kernel_stride));
    if (s.kernel_size != 32) problems.push_back("sparse_config.kernel_size: must be 32, got " + std::to_string(s.kernel_size));
    if (s.window_size <= 0 || s.window_size % 64 != 0)
        problems.push_back("sparse_config.window_size: must be a positive multiple of block_size, got " + std::to_string(s.window_size));
    if (s.topk <= 0) problems.push_back("sparse_config.topk: must be positive, got " + std::to_string(s.topk));
    if (s.init_blocks < 0) problems.push_back("sparse_config.init_blocks: must not be negative");
    if (s.dense_len <= 0) problems.push_back("sparse_config.dense_len: must be positive, got " + std::to_string(s.dense_len));
    if (s.use_nope) problems.push_back("sparse_config.use_nope: true is not supported");
}

}  // namespace

Result<ModelConfig> parse_model_config(std::string_view json_text) {
    auto parsed = parse_json(json_text);
    if (!parsed) return Status(ErrorCode::invalid_config, "config.json is not valid JSON: " + parsed.status().message());
    const JsonValue& root = parsed.value();
    if (!root.is_object()) return Status(ErrorCode::invalid_config, "config.json: the top level must be an object");
    if (std::string dup = root.first_duplicate_key(); !dup.empty())
        return Status(ErrorCode::invalid_config, dup + ": appears twice in config.json");

    ModelConfig c;
    std::vector<std::string> problems;
    read_fields(root, c, problems);
    if (problems.empty()) {
        fill_defaults(c);
        validate(c, problems);
        if (problems.empty()) validate_quantization(c, problems);
    }
    if (!problems.empty()) {
        std::string msg;
        for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
        return Status(ErrorCode::invalid_config, msg);
    }
    return c;
}

Result<ModelConfig> load_model_config(const std::string& path) {
    auto text = read_text_file(path, 16 << 20);
    if (!text) return text.status();
    return parse_model_config(text.value());
}

}  // namespace quire
