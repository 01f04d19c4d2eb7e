#include "tiny_model.h"

#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "bf16.h"
#include "file_util.h"
#include "hash.h"
#include "json.h"
#include "model_config.h"
#include "model_tensors.h"
#include "quant/fp16.h"
#include "quant/gptq_catalogue.h"
#include "quant/quant_config.h"
#include "safetensors.h"

namespace fs = std::filesystem;

namespace quire::tools {

const std::vector<std::string>& added_token_names() {
    static const std::vector<std::string> names = {"<|im_end|>",   "<|im_start|>",   "<tool_call>",    "</tool_call>",
                                                   "<|im_sep|>",   "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"};
    return names;
}

namespace {

// splitmix64: a tiny, well-known, seedable generator (Steele, Lea, Flood 2014).
struct Rng {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    double normal() {  // Box-Muller
        const double u1 = uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

std::string config_json(const TinyModelOptions& o) {
    std::ostringstream j;
    std::string mixers;
    for (int64_t l = 0; l < o.layers; ++l) {
        const bool sparse = std::find(o.sparse_layers.begin(), o.sparse_layers.end(), l) != o.sparse_layers.end();
        mixers += std::string(l ? ", " : "") + (sparse ? "\"minicpm4\"" : "\"lightning-attn\"");
    }
    const int64_t eos_im_end = o.vocab - 8;
    j << "{\n"
      << "  \"architectures\": [\"MiniCPMSALAForCausalLM\"],\n"
      << "  \"model_type\": \"minicpm_sala\",\n"
      << (o.dtype == "float16" ? "  \"torch_dtype\": \"float16\",\n" : "  \"dtype\": \"bfloat16\",\n")
      << "  \"vocab_size\": " << o.vocab << ",\n"
      << "  \"hidden_size\": " << o.hidden << ",\n"
      << "  \"intermediate_size\": " << o.intermediate << ",\n"
      << "  \"num_hidden_layers\": " << o.layers << ",\n"
      << "  \"num_attention_heads\": " << o.heads << ",\n"
      << "  \"num_key_value_heads\": " << o.kv_heads << ",\n"
      << "  \"head_dim\": " << o.head_dim << ",\n"
      << "  \"lightning_nh\": " << o.lightning_heads << ",\n"
      << "  \"lightning_nkv\": " << o.lightning_heads << ",\n"
      << "  \"lightning_head_dim\": " << o.lightning_head_dim << ",\n"
      << "  \"lightning_scale\": \"1/sqrt(d)\",\n"
      << "  \"lightning_use_rope\": true,\n"
      << "  \"attn_use_rope\": false,\n"
      << "  \"qk_norm\": true,\n"
      << "  \"use_output_norm\": true,\n"
      << "  \"use_output_gate\": true,\n"
      << "  \"attn_use_output_gate\": true,\n"
      << "  \"attention_bias\": false,\n"
      << "  \"attention_dropout\": 0.0,\n"
      << "  \"hidden_act\": \"silu\",\n"
      << "  \"rms_norm_eps\": 1e-06,\n"
      << "  \"rope_theta\": 10000.0,\n"
      << "  \"rope_scaling\": null,\n"
      << "  \"max_position_embeddings\": 524288,\n"
      << "  \"scale_emb\": 12,\n"
      << "  \"scale_depth\": 1.4,\n"
      << "  \"dim_model_base\": " << std::max<int64_t>(1, o.hidden / 16) << ",\n"
      << "  \"mup_denominator\": 32,\n"
      << "  \"tie_word_embeddings\": false,\n"
      << "  \"initializer_range\": 0.1,\n"
      << "  \"pretraining_tp\": 1,\n"
      << "  \"use_cache\": true,\n"
      << "  \"shift_labels\": true,\n"
      << "  \"bos_token_id\": 1,\n"
      << "  \"eos_token_id\": [2, " << eos_im_end << "],\n"
      << "  \"pad_token_id\": 2,\n"
      << "  \"transformers_version\": \"4.57.1\",\n"
      << "  \"mixer_types\": [" << mixers << "],\n"
      << "  \"sparse_config\": {\"kernel_size\": 32, \"kernel_stride\": 16, \"init_blocks\": 1, \"block_size\": 64, "
      << "\"window_size\": 2048, \"topk\": 64, \"use_nope\": false, \"dense_len\": " << o.dense_len << "}";
    if (o.gptq.bits != 0 && !o.gptq.dequantized_twin)
        j << ",\n  \"quantization_config\": " << quantization_config_json(o.gptq);
    j << "\n}\n";
    return j.str();
}

// Standard deviation for each tensor: 1/sqrt(fan_in) keeps activations of the random model at
// unit scale through every layer; norm weights scatter around 1.
double tensor_std(const TensorSpec& spec) {
    if (spec.role == TensorRole::norm_vector) return 0.1;
    if (spec.name == "model.embed_tokens.weight") return 0.1;
    return 1.0 / std::sqrt(static_cast<double>(spec.shape[1]));
}

bool wants_fp16_values(const TinyModelOptions& o) { return o.fp16_values || o.dtype == "float16"; }

// The tensor's values, already rounded to bf16 (what the bf16 checkpoint holds); with fp16 values
// then rounded to fp16, which leaves a bf16 value: from 2^-17 up a bf16 value is already on fp16's
// grid (11 significant bits down to 2^-14, then multiples of 2^-24); below 2^-17 the multiple of
// 2^-24 it rounds to has at most 8 significant bits.
std::vector<float> tensor_values(const TensorSpec& spec, uint64_t seed, bool fp16_values) {
    Rng rng{seed ^ hash64(spec.name)};
    const double std = tensor_std(spec);
    const bool norm = spec.role == TensorRole::norm_vector;
    std::vector<float> v(static_cast<size_t>(spec.element_count()));
    for (auto& x : v) {
        x = round_bf16(static_cast<float>((norm ? 1.0 : 0.0) + std * rng.normal()));
        if (fp16_values) x = fp16_to_float(float_to_fp16(x));
    }
    return v;
}

// Every value must survive the storage dtype exactly (the tests compare twins bit for bit).
Status check_representable(const std::vector<float>& values, const std::string& name) {
    for (float x : values)
        if (round_bf16(x) != x || fp16_to_float(float_to_fp16(x)) != x)
            return Status(ErrorCode::invalid_argument, "tensor " + name + ": value " + std::to_string(x) +
                                                           " is not exact in both fp16 and bf16");
    return Status::ok();
}

// Little-endian 16-bit words: BF16, or F16 for a float16 checkpoint.
std::string half_bytes(const std::vector<float>& values, DType dtype) {
    std::string bytes(values.size() * 2, '\0');
    for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t b = dtype == DType::f16 ? float_to_fp16(values[i]) : float_to_bf16(values[i]);
        bytes[2 * i] = static_cast<char>(b & 0xFF);
        bytes[2 * i + 1] = static_cast<char>(b >> 8);
    }
    return bytes;
}

// One tensor as stored: name, dtype, shape, bytes.
struct StoredTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
};

// The tensors of one catalogue entry: the bf16 tensor, or a quantized module's four GPTQ tensors
// (int32 first, so that every tensor stays aligned to its element size in the file).
Result<std::vector<StoredTensor>> stored_tensors(const TinyModelOptions& o, const QuantConfig* quant, const TensorSpec& spec) {
    std::vector<float> values = tensor_values(spec, o.seed, wants_fp16_values(o));
    if (wants_fp16_values(o)) QUIRE_TRY(check_representable(values, spec.name));
    const DType dtype = o.dtype == "float16" ? DType::f16 : DType::bf16;
    if (quant && is_quantizable_linear(spec)) {
        const std::string module = linear_module_name(spec.name);
        const ModuleQuant q = quant->for_module(module);
        if (q.quantized) {
            const int64_t out = spec.shape[0], in = spec.shape[1];
            GptqTensorsBytes g = rtn_quantize(values, out, in, q, o.gptq.v2, o.seed ^ hash64(module));
            if (o.gptq.dequantized_twin) {
                for (auto& x : g.dequantized) x = round_bf16(x);
                return std::vector<StoredTensor>{{spec.name, DType::bf16, spec.shape, half_bytes(g.dequantized, DType::bf16)}};
            }
            const auto specs = gptq_tensor_specs(module, in, out, q);
            return std::vector<StoredTensor>{{specs[0].name, specs[0].dtype, specs[0].shape, std::move(g.qweight)},
                                             {specs[1].name, specs[1].dtype, specs[1].shape, std::move(g.qzeros)},
                                             {specs[3].name, specs[3].dtype, specs[3].shape, std::move(g.g_idx)},
                                             {specs[2].name, specs[2].dtype, specs[2].shape, std::move(g.scales)}};
        }
    }
    return std::vector<StoredTensor>{{spec.name, dtype, spec.shape, half_bytes(values, dtype)}};
}

Status write_weights(const TinyModelOptions& o, const ModelConfig& config) {
    // The settings config.json states, read back through the engine's own parser (the twin's
    // config.json has none, but its weights are the same quantization's).
    std::optional<QuantConfig> quant;
    if (o.gptq.bits != 0) {
        std::vector<std::string> problems;
        quant = parse_quant_config(parse_json(quantization_config_json(o.gptq)).value(), problems);
        if (!problems.empty()) return Status(ErrorCode::invalid_argument, "GPTQ options: " + problems.front());
    }
    std::vector<StoredTensor> tensors;
    int64_t total = 0;
    for (const auto& spec : expected_tensors(config)) {
        auto stored = stored_tensors(o, quant ? &*quant : nullptr, spec);
        if (!stored) return stored.status();
        for (auto& t : stored.value()) {
            total += static_cast<int64_t>(t.bytes.size());
            tensors.push_back(std::move(t));
        }
    }
    const int64_t per_shard = (total + o.shards - 1) / o.shards;

    std::vector<std::vector<const StoredTensor*>> groups(static_cast<size_t>(o.shards));
    int64_t acc = 0;
    for (const auto& t : tensors) {
        const auto g = std::min<int64_t>(o.shards - 1, acc / per_shard);
        groups[static_cast<size_t>(g)].push_back(&t);
        acc += static_cast<int64_t>(t.bytes.size());
    }
    std::string index = "{\n  \"metadata\": {\"total_size\": " + std::to_string(total) + "},\n  \"weight_map\": {\n";
    bool first = true;
    for (int64_t g = 0; g < o.shards; ++g) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05lld-of-%05lld.safetensors", static_cast<long long>(g + 1),
                      static_cast<long long>(o.shards));
        std::vector<SafetensorsEntry> entries;
        for (const auto* t : groups[static_cast<size_t>(g)]) entries.push_back({t->name, t->dtype, t->shape, 0, 0});
        std::string file = make_safetensors_header(entries, {{"format", "pt"}});
        for (const auto& e : entries)
            if (e.begin % dtype_size(e.dtype) != 0)
                return Status(ErrorCode::invalid_argument, "tensor " + e.name + " would not be aligned in " + name);
        for (const auto* t : groups[static_cast<size_t>(g)]) {
            file += t->bytes;
            index += std::string(first ? "" : ",\n") + "    " + json_quote(t->name) + ": \"" + name + "\"";
            first = false;
        }
        QUIRE_TRY(write_file_atomically((fs::path(o.out_dir) / name).string(), file));
    }
    index += "\n  }\n}\n";
    return write_file_atomically((fs::path(o.out_dir) / "model.safetensors.index.json").string(), index);
}

Status train_tokenizer(const TinyModelOptions& o) {
    std::vector<std::string> inputs;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(o.corpus_dir, ec))
        if (e.path().extension() == ".txt") inputs.push_back(e.path().string());
    if (inputs.empty()) return Status(ErrorCode::io_error, "no .txt files in tokenizer corpus " + o.corpus_dir);
    std::sort(inputs.begin(), inputs.end());
    std::string input_list;
    for (const auto& i : inputs) input_list += (input_list.empty() ? "" : ",") + i;
    const std::string prefix = (fs::path(o.out_dir) / "tokenizer").string();
    // Llama-style BPE: byte fallback, digits split, identity normalisation, dummy prefix.
    const std::string args = "--input=" + input_list + " --model_prefix=" + prefix +
                             " --vocab_size=" + std::to_string(o.vocab - 8) +
                             " --model_type=bpe --character_coverage=1.0 --byte_fallback=true --split_digits=true"
                             " --num_threads=1 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1"
                             " --add_dummy_prefix=true --remove_extra_whitespaces=false"
                             " --normalization_rule_name=identity --allow_whitespace_only_pieces=true"
                             " --hard_vocab_limit=false --shuffle_input_sentence=false --max_sentence_length=100000"
                             " --minloglevel=2";
    const auto s = sentencepiece::SentencePieceTrainer::Train(args);
    if (!s.ok()) return Status(ErrorCode::io_error, "sentencepiece training failed: " + s.ToString());
    fs::remove(prefix + ".vocab", ec);
    return Status::ok();
}

Status write_tokenizer_files(const TinyModelOptions& o) {
    const fs::path dir(o.out_dir);
    const auto& names = added_token_names();
    std::string decoder = "{\n    \"0\": {\"content\": \"<unk>\", \"special\": true},\n"
                          "    \"1\": {\"content\": \"<s>\", \"special\": true},\n"
                          "    \"2\": {\"content\": \"</s>\", \"special\": true}";
    std::string added = "{\n";
    for (size_t i = 0; i < names.size(); ++i) {
        const int64_t id = o.vocab - 8 + static_cast<int64_t>(i);
        decoder += ",\n    \"" + std::to_string(id) + "\": {\"content\": " + json_quote(names[i]) + ", \"special\": true}";
        added += std::string(i ? ",\n" : "") + "  " + json_quote(names[i]) + ": " + std::to_string(id);
    }
    decoder += "\n  }";
    added += "\n}\n";
    // Our own Jinja rendering of ChatML, equivalent to the template's verified behaviour (docs/model.md §7).
    const std::string chat_template =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const std::string config = "{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"add_bos_token\": true,\n"
                               "  \"add_eos_token\": false,\n  \"legacy\": " +
                               std::string(o.tokenizer_legacy ? "true" : "false") +
                               ",\n  \"bos_token\": \"<s>\",\n  \"eos_token\": \"<|im_end|>\",\n"
                               "  \"unk_token\": \"<unk>\",\n  \"pad_token\": \"</s>\",\n"
                               "  \"model_max_length\": 1048576,\n  \"added_tokens_decoder\": " +
                               decoder + ",\n  \"chat_template\": " + json_quote(chat_template) + "\n}\n";
    std::string extra;
    for (size_t i = 0; i < names.size(); ++i) extra += std::string(i ? ", " : "") + json_quote(names[i]);
    const std::string special_map = "{\n  \"bos_token\": \"<s>\",\n  \"eos_token\": \"<|im_end|>\",\n"
                                    "  \"unk_token\": \"<unk>\",\n  \"pad_token\": \"</s>\",\n"
                                    "  \"additional_special_tokens\": [" + extra + "]\n}\n";
    const std::string generation = "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": [2, " +
                                   std::to_string(o.vocab - 8) + "],\n  \"pad_token_id\": 2,\n"
                                   "  \"transformers_version\": \"4.56.1\"\n}\n";
    QUIRE_TRY(write_file_atomically((dir / "tokenizer_config.json").string(), config));
    QUIRE_TRY(write_file_atomically((dir / "added_tokens.json").string(), added));
    QUIRE_TRY(write_file_atomically((dir / "special_tokens_map.json").string(), special_map));
    return write_file_atomically((dir / "generation_config.json").string(), generation);
}

}  // namespace

Status write_tiny_model(const TinyModelOptions& o) {
    if (o.vocab < 300) return Status(ErrorCode::invalid_argument, "--vocab must be at least 300 (byte fallback needs 256 pieces)");
    if (o.shards < 1) return Status(ErrorCode::invalid_argument, "--shards must be at least 1");
    if (!o.gptq.dynamic.empty() && o.gptq.dynamic != "sala" && o.gptq.dynamic != "mixed")
        return Status(ErrorCode::invalid_argument, "--gptq-dynamic must be sala or mixed, got " + o.gptq.dynamic);
    if (o.dtype != "bfloat16" && o.dtype != "float16")
        return Status(ErrorCode::invalid_argument, "--dtype must be bfloat16 or float16, got " + o.dtype);
    if (o.dtype == "float16" && o.gptq.dequantized_twin)
        return Status(ErrorCode::invalid_argument, "--gptq-dequantized-twin writes bf16 weights: it cannot be combined with --dtype float16");
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) return Status(ErrorCode::io_error, o.out_dir + ": " + ec.message());
    const std::string cfg_text = config_json(o);
    auto config = parse_model_config(cfg_text);
    if (!config) return Status(ErrorCode::invalid_argument, "the requested shape is not a valid model:\n" + config.status().message());
    QUIRE_TRY(write_file_atomically((fs::path(o.out_dir) / "config.json").string(), cfg_text));
    QUIRE_TRY(write_weights(o, config.value()));
    QUIRE_TRY(train_tokenizer(o));
    return write_tokenizer_files(o);
}

}  // namespace quire::tools
