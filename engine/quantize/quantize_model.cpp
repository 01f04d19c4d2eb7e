#include "quantize/quantize_model.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>

#include "checkpoint.h"
#include "cpu/vec_math.h"
#include "file_util.h"
#include "json.h"
#include "model_config.h"
#include "model_tensors.h"
#include "quant/fp16.h"
#include "quantize/gptq.h"
#include "quantize/output_folder.h"
#include "safetensors.h"
#include "tokenizer.h"

namespace fs = std::filesystem;

namespace quire::quantize {

const std::vector<std::string>& skipped_linear_patterns() {
    static const std::vector<std::string> patterns{R"(.*self_attn\.o_gate.*)", R"(.*self_attn\.z_proj.*)"};
    return patterns;
}

namespace {

// The linear layers of a decoder layer that quantization applies to (before the dynamic skips).
const std::map<std::string, Linear>& linear_suffixes() {
    static const std::map<std::string, Linear> m{
        {"self_attn.q_proj.weight", Linear::q},       {"self_attn.k_proj.weight", Linear::k},
        {"self_attn.v_proj.weight", Linear::v},       {"self_attn.o_proj.weight", Linear::o},
        {"self_attn.o_gate.weight", Linear::out_gate}, {"self_attn.z_proj.weight", Linear::out_gate},
        {"mlp.gate_proj.weight", Linear::mlp_gate},   {"mlp.up_proj.weight", Linear::mlp_up},
        {"mlp.down_proj.weight", Linear::mlp_down}};
    return m;
}

bool skipped_by_dynamic(const std::string& module) {
    for (const auto& p : skipped_linear_patterns())
        if (std::regex_search(module, std::regex(p))) return true;
    return false;
}

struct Source {
    std::string config_text;
    ModelConfig config;
    std::optional<Checkpoint> checkpoint;
};

Result<Source> open_source(const std::string& src) {
    std::error_code ec;
    if (src.empty()) return Status(ErrorCode::invalid_argument, "SRC is empty: name the model folder");
    if (!fs::exists(src, ec)) return Status(ErrorCode::invalid_argument, "SRC " + src + " does not exist");
    if (!fs::is_directory(src, ec)) return Status(ErrorCode::invalid_argument, "SRC " + src + " is not a folder");
    Source s;
    auto text = read_text_file((fs::path(src) / "config.json").string(), 16 << 20);
    if (!text) return Status(ErrorCode::invalid_config, "SRC " + src + " is not a model folder: " + text.status().message());
    s.config_text = text.value();
    auto json = parse_json(s.config_text);
    if (!json || !json->is_object()) return Status(ErrorCode::invalid_config, "SRC " + src + "/config.json is not a JSON object");
    if (json->find("quantization_config"))
        return Status(ErrorCode::unsupported, "SRC " + src + " is already quantized (its config.json has quantization_config)");
    auto config = parse_model_config(s.config_text);
    if (!config) return Status(config.status().code(), "SRC " + src + ": " + config.status().message());
    s.config = config.value();
    auto ck = Checkpoint::open(src, s.config);
    if (!ck) return Status(ck.status().code(), "SRC " + src + ": " + ck.status().message());
    s.checkpoint.emplace(std::move(ck.value()));
    return s;
}

enum class Part { copy, qweight, qzeros, scales, g_idx };

struct Planned {
    std::string name;  // output tensor
    DType dtype = DType::bf16;
    std::vector<int64_t> shape;
    int64_t bytes = 0;
    Part part = Part::copy;
    const TensorRef* source = nullptr;
    std::string source_name;
    int64_t layer = -1;
    Linear which = Linear::q;
    int64_t shard = 0;
};

struct LinearId {
    int64_t layer;
    Linear which;
};
// The decoder layer a tensor belongs to, or -1 (embedding, final norm, lm_head).
int64_t layer_of(const std::string& name) {
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) != 0) return -1;
    return std::stoll(name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size()));
}

std::optional<LinearId> quantized_linear(const std::string& name) {
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) != 0) return std::nullopt;
    const size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos) return std::nullopt;
    auto it = linear_suffixes().find(name.substr(dot + 1));
    if (it == linear_suffixes().end()) return std::nullopt;
    if (skipped_by_dynamic(name.substr(0, name.size() - std::strlen(".weight")))) return std::nullopt;
    return LinearId{layer_of(name), it->second};
}

Result<std::vector<Planned>> plan_tensors(const Source& s, const QuantizeOptions& o) {
    std::vector<Planned> plan;
    const QuantSpec& q = o.spec;
    for (const TensorSpec& spec : expected_tensors(s.config)) {
        const TensorRef* ref = s.checkpoint->find(spec.name);
        auto id = quantized_linear(spec.name);
        if (!id) {
            plan.push_back({spec.name, ref->dtype, ref->shape, ref->bytes, Part::copy, ref, spec.name, layer_of(spec.name)});
            continue;
        }
        const int64_t out = ref->shape[0], in = ref->shape[1];
        QUIRE_TRY(check_layer_shape(q, out, in, spec.name));
        const std::string base = spec.name.substr(0, spec.name.size() - std::strlen(".weight"));
        const int64_t groups = q.groups_of(in), per = q.per_word();
        auto add = [&](const char* suffix, DType dtype, std::vector<int64_t> shape, Part part) {
            int64_t bytes = dtype_size(dtype);
            for (int64_t d : shape) bytes *= d;
            plan.push_back({base + suffix, dtype, std::move(shape), bytes, part, ref, spec.name, id->layer, id->which});
        };
        add(".qweight", DType::i32, {in / per, out}, Part::qweight);
        add(".qzeros", DType::i32, {groups, out / per}, Part::qzeros);
        add(".scales", DType::f16, {groups, out}, Part::scales);
        add(".g_idx", DType::i32, {in}, Part::g_idx);
    }
    return plan;
}

std::string quantization_config_json(const QuantizeOptions& o, int64_t calibration_tokens) {
    const QuantSpec& q = o.spec;
    std::string dynamic;
    for (const auto& p : skipped_linear_patterns()) dynamic += std::string(dynamic.empty() ? "" : ", ") + json_quote("-:" + p) + ": {}";
    auto b = [](bool v) { return v ? "true" : "false"; };
    std::string s = "{\n";
    s += "    \"bits\": " + std::to_string(q.bits) + ",\n";
    s += "    \"group_size\": " + std::to_string(q.group_size) + ",\n";
    s += std::string("    \"desc_act\": ") + b(o.desc_act) + ",\n";
    s += std::string("    \"sym\": ") + b(q.sym) + ",\n";
    s += "    \"lm_head\": false,\n";
    s += "    \"quant_method\": \"gptq\",\n";
    s += std::string("    \"checkpoint_format\": ") + (q.zero_offset == 1 ? "\"gptq\"" : "\"gptq_v2\"") + ",\n";
    s += "    \"pack_dtype\": \"int32\",\n";
    s += "    \"dynamic\": {" + dynamic + "},\n";
    s += "    \"meta\": {\"quantizer\": [" + json_quote(o.producer) + "], \"method\": " + json_quote(o.gptq ? "gptq" : "rtn") +
         ", \"damp_percent\": 0.01, \"true_sequential\": false, \"static_groups\": false, \"calibration_tokens\": " +
         std::to_string(calibration_tokens) + "}\n";
    return s + "  }";
}

// The source config.json with quantization_config added as its last member (the rest byte for byte).
Result<std::string> quantized_config(const std::string& text, const std::string& qc) {
    const size_t close = text.rfind('}');
    if (close == std::string::npos) return Status(ErrorCode::invalid_config, "config.json has no closing brace");
    size_t before = close;
    while (before > 0 && std::isspace(static_cast<unsigned char>(text[before - 1]))) --before;
    std::string out = text.substr(0, before) + ",\n  \"quantization_config\": " + qc + "\n}\n";
    if (!parse_json(out)) return Status(ErrorCode::invalid_config, "could not add quantization_config to config.json");
    return out;
}

// A source matrix in fp32 (exact from BF16 and from F16: the quantizer sees the stored weights).
std::vector<float> to_float(const TensorRef& t) {
    std::vector<float> w(static_cast<size_t>(t.bytes / 2));
    if (t.dtype == DType::f16) {
        for (size_t i = 0; i < w.size(); ++i) {
            uint16_t h;
            std::memcpy(&h, t.data + 2 * i, 2);
            w[i] = fp16_to_float(h);
        }
    } else {
        cpu::bf16_to_float_row(reinterpret_cast<const uint16_t*>(t.data), w.data(), static_cast<int64_t>(w.size()));
    }
    release_mapped_pages(t.data, t.bytes);
    return w;
}

template <typename T>
std::string as_bytes(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// The quantized tensors of one source matrix, waiting to be written in plan order.
struct Pending {
    std::string source;
    std::map<Part, std::string> bytes;
};

}  // namespace

Status check_source(const std::string& src, const QuantizeOptions& options) {
    auto s = open_source(src);
    if (!s) return s.status();
    // The copy is a model to answer with, and that needs the tokenizer: finding out after an hour
    // of quantizing that DST cannot be loaded (or that the file cannot even be copied) would waste
    // the hour. It is loaded as the engine will load it.
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(fs::path(src) / "tokenizer.model", ec)))
        return Status(ErrorCode::invalid_argument, src + " has no tokenizer.model (the model's sentencepiece tokenizer): a copy without it "
                                                         "could not be used; quantize the complete model folder");
    if (auto tok = Tokenizer::load(src, s->config.vocab_size); !tok)
        return Status(tok.status().code(), "SRC " + src + ": " + tok.status().message() + "; a copy with it could not be used");
    auto plan = plan_tensors(s.value(), options);
    return plan ? Status::ok() : plan.status();
}

Result<std::vector<LayerReport>> quantize_model(const QuantizeRun& run) {
    const QuantizeOptions& o = run.options;
    if (o.gptq && !run.calibrator) return Status(ErrorCode::invalid_argument, "GPTQ needs calibration tokens");
    auto source = open_source(run.src);
    if (!source) return source.status();
    const Source& s = source.value();
    auto planned = plan_tensors(s, o);
    if (!planned) return planned.status();
    std::vector<Planned>& plan = planned.value();
    QUIRE_TRY(check_destination(run.src, run.dst, o.force));

    // Shards in plan order, each at most shard_bytes (a larger tensor alone in its own).
    int64_t shards = 0, in_shard = 0, total = 0, source_total = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
        if (i == 0 || (in_shard > 0 && in_shard + plan[i].bytes > o.shard_bytes)) ++shards, in_shard = 0;
        plan[i].shard = shards - 1;
        in_shard += plan[i].bytes;
        total += plan[i].bytes;
        if (plan[i].part == Part::copy || plan[i].part == Part::qweight) source_total += plan[i].source->bytes;
    }
    auto shard_name = [&](int64_t k) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05lld-of-%05lld.safetensors", static_cast<long long>(k + 1), static_cast<long long>(shards));
        return std::string(name);
    };

    // Everything else in the folder (tokenizer, generation config, licence) is copied as it is.
    std::vector<fs::path> extras;
    int64_t extra_bytes = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run.src, ec)) {
        const std::string name = e.path().filename().string();
        const bool weights = name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
        if (name.empty() || name[0] == '.' || weights || name == "config.json" || name == "model.safetensors.index.json" ||
            name == "quantize_config.json" || !fs::is_regular_file(e.path(), ec))
            continue;
        extras.push_back(e.path());
        extra_bytes += static_cast<int64_t>(fs::file_size(e.path(), ec));
    }
    const std::string parent = fs::path(destination_folder(run.dst)).parent_path().string();
    auto avail = free_bytes(parent);
    if (!avail) return avail.status();
    const int64_t needed = total + extra_bytes + (1 << 20);
    if (avail.value() < needed)
        return Status(ErrorCode::io_error, "not enough free space in " + parent + ": the quantized model needs " +
                                               std::to_string(needed / (1 << 20)) + " MiB, " + std::to_string(avail.value() / (1 << 20)) +
                                               " MiB are free");

    auto staging = StagingFolder::create(run.dst);
    if (!staging) return staging.status();
    const fs::path out_dir = staging->path();

    std::optional<cpu::ThreadPool> own_pool;
    if (!run.calibrator) own_pool.emplace(o.threads);
    cpu::ThreadPool& pool = run.calibrator ? run.calibrator->pool() : *own_pool;
    const auto start = std::chrono::steady_clock::now();
    QuantizeProgress progress;
    progress.layers = s.config.num_hidden_layers;
    progress.bytes_total = source_total;
    auto cancelled = [&] { return run.cancel && run.cancel->load(); };
    auto interrupted = [&] { return Status(ErrorCode::cancelled, "quantization was interrupted; nothing was written to " + run.dst); };
    std::vector<LayerReport> reports;
    int64_t hessian_layer = -1;
    LayerHessians hessians;
    Pending pending;
    std::map<std::string, std::string> weight_map;

    // Quantizes one source matrix into its four tensors.
    auto quantize_matrix = [&](const Planned& p) -> Status {
        const int64_t out = p.source->shape[0], in = p.source->shape[1];
        if (run.calibrator && hessian_layer != p.layer) {
            hessians = {};  // free the previous layer's first
            auto h = run.calibrator->layer(p.layer, run.cancel);
            if (!h) return cancelled() ? interrupted() : h.status();
            hessians = std::move(h.value());
            hessian_layer = p.layer;
        }
        const float* h = run.calibrator ? hessians.of(p.which) : nullptr;
        std::vector<float> w = to_float(*p.source);
        Result<QuantizedMatrix> m = o.gptq ? gptq_quantize(pool, w.data(), out, in, h, o.spec, {0.01, o.desc_act, 128, run.cancel})
                                           : rtn_quantize(pool, w.data(), out, in, o.spec);
        if (cancelled()) return interrupted();
        if (!m) return Status(m.status().code(), p.source_name + ": " + m.status().message());
        LayerReport r;
        r.name = p.source_name;
        r.out = out;
        r.in = in;
        const WeightError kept = weight_error(pool, w.data(), m.value());
        r.weight_error = kept.relative;
        r.zeroed = kept.zeroed;
        if (h) r.calib_loss = calibration_loss(pool, w.data(), m.value(), hessians.rows_of(p.which), hessians.rows);
        reports.push_back(r);
        if (run.on_layer) run.on_layer(r);
        pending.source = p.source_name;
        pending.bytes[Part::qweight] = as_bytes(pack_qweight(m.value(), o.spec));
        pending.bytes[Part::qzeros] = as_bytes(pack_qzeros(m.value(), o.spec));
        pending.bytes[Part::scales] = as_bytes(pack_scales(m.value()));
        pending.bytes[Part::g_idx] = as_bytes(m->g_idx);
        return Status::ok();
    };

    for (int64_t k = 0; k < shards; ++k) {
        std::vector<SafetensorsEntry> entries;
        std::vector<const Planned*> members;
        for (const Planned& p : plan)
            if (p.shard == k) {
                SafetensorsEntry e;
                e.name = p.name;
                e.dtype = p.dtype;
                e.shape = p.shape;
                e.end = p.bytes;
                entries.push_back(e);
                members.push_back(&p);
            }
        const std::string file = shard_name(k);
        auto writer = AtomicFile::create((out_dir / file).string());
        if (!writer) return writer.status();
        const std::string header = make_safetensors_header(entries, {{"format", "pt"}});
        QUIRE_TRY(writer->write(header.data(), static_cast<int64_t>(header.size())));
        for (const Planned* p : members) {
            if (cancelled()) return interrupted();
            weight_map[p->name] = file;
            progress.layer = p->layer;
            progress.tensor = p->name;
            if (p->part == Part::copy) {
                constexpr int64_t kChunk = int64_t{64} << 20;
                for (int64_t off = 0; off < p->bytes; off += kChunk) {
                    const int64_t n = std::min(kChunk, p->bytes - off);
                    QUIRE_TRY(writer->write(p->source->data + off, n));
                    release_mapped_pages(p->source->data + off, n);
                }
                progress.bytes_done += p->source->bytes;
            } else {
                if (p->part == Part::qweight) {
                    QUIRE_TRY(quantize_matrix(*p));
                    progress.bytes_done += p->source->bytes;
                }
                std::string& bytes = pending.bytes[p->part];
                if (static_cast<int64_t>(bytes.size()) != p->bytes)
                    return Status(ErrorCode::invalid_argument, "internal: " + p->name + " has " + std::to_string(bytes.size()) +
                                                                   " bytes, the plan says " + std::to_string(p->bytes));
                QUIRE_TRY(writer->write(bytes.data(), p->bytes));
                std::string().swap(bytes);
            }
            progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (run.on_progress) run.on_progress(progress);
        }
        QUIRE_TRY(writer->commit());
    }

    std::string index = "{\n  \"metadata\": {\"total_size\": " + std::to_string(total) + "},\n  \"weight_map\": {\n";
    size_t i = 0;
    for (const auto& [name, file] : weight_map)
        index += "    " + json_quote(name) + ": " + json_quote(file) + (++i < weight_map.size() ? ",\n" : "\n");
    index += "  }\n}\n";
    auto write_whole = [&](const std::string& name, const std::string& bytes) {
        return write_file_atomically((out_dir / name).string(), bytes);
    };
    QUIRE_TRY(write_whole("model.safetensors.index.json", index));
    for (const fs::path& extra : extras) {
        fs::copy_file(extra, out_dir / extra.filename(), ec);
        if (ec) return Status(ErrorCode::io_error, "cannot copy " + extra.string() + ": " + ec.message());
    }
    const std::string qc = quantization_config_json(o, run.calibrator ? run.calibrator->token_count() : 0);
    auto config = quantized_config(s.config_text, qc);
    if (!config) return config.status();
    QUIRE_TRY(write_whole("quantize_config.json", qc + "\n"));  // what older GPTQ loaders read
    QUIRE_TRY(write_whole("config.json", config.value()));  // last: only now does the folder look like a model
    if (cancelled()) return interrupted();
    QUIRE_TRY(staging->commit(o.force));
    return reports;
}

}  // namespace quire::quantize
