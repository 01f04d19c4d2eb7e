#include "model_info.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "checkpoint.h"
#include "tokenizer.h"

namespace fs = std::filesystem;

namespace quire {

namespace {
void add_lines(std::vector<std::string>& out, const std::string& text) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
}
}  // namespace

std::string format_bytes(int64_t bytes) {
    const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        ++u;
    }
    char buf[48];
    if (u == 0) std::snprintf(buf, sizeof buf, "%lld bytes", static_cast<long long>(bytes));
    else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
    return buf;
}

std::string with_thousands(int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return n < 0 ? "-" + out : out;
}

ModelReport inspect_model(const std::string& dir) {
    ModelReport r;
    r.dir = dir;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        if (dir.empty()) r.problems.push_back("no model folder was named");
        else r.problems.push_back(dir + (fs::exists(fs::symlink_status(dir, ec)) ? ": not a folder" : ": does not exist"));
        return r;
    }
    auto config = load_model_config((fs::path(dir) / "config.json").string());
    if (!config) {
        add_lines(r.problems, "config.json: " + config.status().message());
        return r;
    }
    r.config = config.value();

    auto shards = find_shards(dir);
    r.weights_present = shards.is_ok() || shards.status().message().rfind("weights are missing", 0) != 0;
    auto ck = Checkpoint::open(dir, *r.config);
    if (ck) {
        r.weights_valid = true;
        r.weight_bytes = ck->total_bytes();
        r.shard_count = ck->shard_count();
        r.tensor_count = static_cast<int64_t>(ck->tensors().size());
        r.quantized_linears = static_cast<int64_t>(ck->gptq_modules().size());
        r.skipped_linears = ck->skipped_linear_count();
        for (const auto& [module, t] : ck->gptq_modules())
            for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"})
                if (const TensorRef* ref = ck->find(module + part)) r.quantized_bytes += ref->bytes;
        // What bind_weights converts (model_weights.h): every F16 matrix but a GPTQ module's scales.
        for (const auto& [name, t] : ck->tensors())
            if (t.dtype == DType::f16 && t.shape.size() == 2 && !name.ends_with(".scales")) r.converted_bytes += t.bytes;
    } else {
        add_lines(r.problems, ck.status().message());
    }

    if (!fs::exists(fs::path(dir) / "tokenizer.model", ec)) {
        r.problems.push_back("tokenizer is missing: no tokenizer.model in " + dir);
    } else {
        auto tok = Tokenizer::load(dir, r.config->vocab_size);
        if (tok) {
            r.tokenizer_valid = true;
            r.tokenizer_pieces = tok->piece_count();
            r.add_bos = tok->add_bos();
            r.tokenizer_legacy = tok->legacy();
            r.special_tokens = tok->special_tokens();
        } else {
            add_lines(r.problems, tok.status().message());
        }
    }
    return r;
}

std::string format_model_report(const ModelReport& r) {
    std::ostringstream o;
    o << "model folder: " << r.dir << "\n";
    if (r.config) {
        const ModelConfig& c = *r.config;
        std::string arch = c.architectures.empty() ? "(none)" : c.architectures[0];
        o << "architecture: " << arch << " (model_type " << c.model_type << ")\n";
        o << "layers: " << c.num_hidden_layers << " (" << c.sparse_layer_count() << " sparse InfLLM-v2, "
          << c.lightning_layer_count() << " Lightning)\n";
        std::string pattern, sparse_list;
        for (size_t i = 0; i < c.mixer_types.size(); ++i) {
            pattern += c.mixer_types[i] == MixerType::sparse ? 'S' : 'L';
            if (c.mixer_types[i] == MixerType::sparse)
                sparse_list += (sparse_list.empty() ? "" : ",") + std::to_string(i);
        }
        o << "layer pattern: " << pattern << " (sparse at " << sparse_list << ")\n";
        o << "hidden " << c.hidden_size << ", MLP " << c.intermediate_size << ", vocab " << c.vocab_size << "\n";
        o << "sparse attention: " << c.num_attention_heads << " query heads, " << c.num_key_value_heads
          << " KV heads, head_dim " << c.head_dim << " (GQA " << c.gqa_group() << ":1), NoPE\n";
        o << "lightning attention: " << c.lightning_nh << " heads, head_dim " << c.lightning_head_dim
          << (c.lightning_use_rope ? ", RoPE theta " : ", no RoPE ") << c.rope_theta << "\n";
        const auto& s = c.sparse;
        o << "sparse settings: dense below " << s.dense_len << " tokens; blocks of " << s.block_size
          << ", top-" << s.topk << " + " << s.local_blocks() << " local = " << s.effective_topk()
          << " blocks, " << s.init_blocks << " init block(s); C1 " << s.kernel_size << "/" << s.kernel_stride
          << ", C2 " << s.c2_kernel() << "/" << s.c2_stride() << "\n";
        const int64_t params = c.parameter_count();
        o << "parameters: " << with_thousands(params) << " (" << format_bytes(params * 2) << " in bf16)\n";
        o << "dtype: " << c.dtype;
        if (c.dtype == "float16")
            o << " (the engines compute in bf16: unquantized tensors are converted when loaded"
              << (r.weights_valid ? ", " + format_bytes(r.converted_bytes) + " of copies in host memory" : std::string()) << ")";
        o << "\n";
        if (c.quantization) {
            const QuantConfig& q = *c.quantization;
            o << "quantization: GPTQ " << q.bits << "-bit, group_size " << q.group_size << (q.sym ? ", sym" : ", asym")
              << ", desc_act " << (q.desc_act ? "on" : "off") << ", checkpoint_format " << gptq_format_name(q.format)
              << ", " << q.dynamic.size() << " dynamic rule(s)\n";
        }
        o << "muP: embedding x" << c.scale_emb << ", residual x" << c.residual_scale() << ", logits / "
          << c.logit_divisor() << "\n";
    }
    if (r.weights_valid) {
        o << "weights: " << r.tensor_count << " tensors in " << r.shard_count << " shard(s), "
          << format_bytes(r.weight_bytes) << ", all bound\n";
        if (r.config && r.config->quantization)
            o << "quantized layers: " << r.quantized_linears << " linear layers in GPTQ (" << format_bytes(r.quantized_bytes)
              << "), " << r.skipped_linears << " left in " << (r.config->dtype == "float16" ? "float16" : "bf16")
              << " by the dynamic rules\n";
    } else if (r.config) {
        o << "weights: " << (r.weights_present ? "INVALID (see problems)" : "MISSING") << "\n";
    }
    if (r.tokenizer_valid) {
        o << "tokenizer: " << r.tokenizer_pieces << " sentencepiece pieces, BOS " << (r.add_bos ? "added" : "not added")
          << ", legacy " << (r.tokenizer_legacy ? "true" : "false") << "\n";
        o << "special tokens:";
        for (const auto& [id, text] : r.special_tokens) o << " " << text << "=" << id;
        o << "\n";
    }
    if (r.ok()) {
        o << "validation: OK\n";
    } else {
        o << "validation: " << r.problems.size() << " problem(s)\n";
        for (const auto& p : r.problems) o << "  problem: " << p << "\n";
    }
    return o.str();
}

}  // namespace quire
