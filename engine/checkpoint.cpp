#include "checkpoint.h"

#include <filesystem>
#include <set>

#include "file_util.h"
#include "hash.h"
#include "json.h"
#include "model_tensors.h"
#include "quant/gptq_catalogue.h"
#include "weights_hash.h"

namespace fs = std::filesystem;

namespace quire {

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

Status join_problems(const std::vector<std::string>& problems) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
    return Status(ErrorCode::invalid_checkpoint, msg);
}

// True when `child` (after resolving links) lies inside `parent`.
bool is_inside(const fs::path& parent, const fs::path& child) {
    std::error_code ec;
    const fs::path p = fs::weakly_canonical(parent, ec);
    const fs::path c = fs::weakly_canonical(child, ec);
    auto pit = p.begin();
    auto cit = c.begin();
    for (; pit != p.end(); ++pit, ++cit)
        if (cit == c.end() || *pit != *cit) return false;
    return cit != c.end();
}

}  // namespace

Result<ShardList> find_shards(const std::string& model_dir) {
    const fs::path dir(model_dir);
    const fs::path index = dir / "model.safetensors.index.json";
    ShardList list;
    std::error_code ec;
    if (fs::exists(index, ec)) {
        auto text = read_text_file(index.string(), 64 << 20);
        if (!text) return Status(ErrorCode::invalid_checkpoint, text.status().message());
        auto parsed = parse_json(text.value());
        if (!parsed) return Status(ErrorCode::invalid_checkpoint, "model.safetensors.index.json: " + parsed.status().message());
        const JsonValue* map = parsed->find("weight_map");
        if (!map || !map->is_object())
            return Status(ErrorCode::invalid_checkpoint, "model.safetensors.index.json: no \"weight_map\" object");
        if (std::string dup = map->first_duplicate_key(); !dup.empty())
            return Status(ErrorCode::invalid_checkpoint, "model.safetensors.index.json: tensor '" + dup + "' is listed twice");
        std::vector<std::string> problems;
        std::set<std::string> files;
        for (const auto& [tensor, file] : map->members()) {
            if (!file.is_string() || file.as_string().empty()) {
                problems.push_back("model.safetensors.index.json: tensor '" + tensor + "' has no shard file name");
                continue;
            }
            const fs::path rel(file.as_string());
            bool escapes = rel.is_absolute();
            for (const auto& part : rel)
                if (part == "..") escapes = true;
            const fs::path full = dir / rel;
            if (escapes || !is_inside(dir, full)) {
                problems.push_back("model.safetensors.index.json: shard '" + file.as_string() +
                                   "' is outside the model folder");
                continue;
            }
            list.weight_map[tensor] = full.string();
            files.insert(full.string());
        }
        for (const auto& f : files)
            if (!fs::is_regular_file(f, ec))
                problems.push_back("model.safetensors.index.json names shard '" + fs::path(f).filename().string() +
                                   "', which does not exist");
        if (!problems.empty()) return join_problems(problems);
        list.files.assign(files.begin(), files.end());
        return list;
    }
    const fs::path single = dir / "model.safetensors";
    if (fs::exists(single, ec)) {
        list.files.push_back(single.string());
        return list;
    }
    return Status(ErrorCode::invalid_checkpoint,
                  "weights are missing: " + model_dir + " has neither model.safetensors.index.json nor model.safetensors");
}

DType checkpoint_dtype(const ModelConfig& config) { return config.dtype == "float16" ? DType::f16 : DType::bf16; }

Result<Checkpoint> Checkpoint::open(const std::string& model_dir, const ModelConfig& config) {
    auto shards = find_shards(model_dir);
    if (!shards) return shards.status();

    Checkpoint ck;
    if (config.quantization) ck.config_zero_offset_ = config.quantization->zero_offset();
    std::vector<std::string> problems;
    std::map<std::string, std::string> found_in;  // tensor -> shard file
    uint64_t headers_hash = 0;
    for (const auto& file : shards->files) {
        const std::string label = fs::path(file).filename().string();
        auto mapped = MappedFile::open(file);
        if (!mapped) {
            problems.push_back(label + ": " + mapped.status().message());
            continue;
        }
        const auto& m = mapped.value();
        auto header = parse_safetensors_header(m->data(), m->size(), m->size(), label);
        if (!header) {
            problems.push_back(header.status().message());
            continue;
        }
        headers_hash = hash64(m->data(), header->data_offset, headers_hash);
        for (const auto& e : header->tensors) {
            if (auto it = found_in.find(e.name); it != found_in.end()) {
                problems.push_back("tensor '" + e.name + "' appears in both " + fs::path(it->second).filename().string() +
                                   " and " + label);
                continue;
            }
            found_in[e.name] = file;
            if (!shards->weight_map.empty()) {
                auto w = shards->weight_map.find(e.name);
                if (w == shards->weight_map.end())
                    problems.push_back("tensor '" + e.name + "' in " + label + " is not listed in the index");
                else if (w->second != file)
                    problems.push_back("tensor '" + e.name + "' is in " + label + " but the index puts it in " +
                                       fs::path(w->second).filename().string());
            }
            TensorRef ref;
            ref.data = m->data() + header->data_offset + e.begin;
            ref.dtype = e.dtype;
            ref.shape = e.shape;
            ref.bytes = e.end - e.begin;
            ref.shard = label;
            ck.total_bytes_ += ref.bytes;
            ck.tensors_[e.name] = std::move(ref);
        }
        ck.shards_.push_back(m);
    }
    for (const auto& [tensor, file] : shards->weight_map)
        if (!found_in.count(tensor) && fs::exists(file))
            problems.push_back("index maps tensor '" + tensor + "' to " + fs::path(file).filename().string() +
                               ", which does not contain it");
    if (!problems.empty()) return join_problems(problems);

    // Bind against the config's catalogue; a linear module the quantization_config quantizes is
    // stored as its four GPTQ tensors instead of the bf16 weight (docs/quantization.md §3).
    std::set<std::string> expected_names;
    const DType weights_dtype = checkpoint_dtype(config);
    const QuantConfig* quant = config.quantization ? &*config.quantization : nullptr;
    for (const auto& spec : expected_tensors(config)) {
        if (quant && is_quantizable_linear(spec)) {
            const std::string module = linear_module_name(spec.name);
            const ModuleQuant q = quant->for_module(module);
            if (q.quantized) {
                expected_names.insert(spec.name);  // its presence gets the message below, not "unexpected"
                ck.check_gptq_module(module, spec.shape[1], spec.shape[0], q, expected_names, problems);
                if (ck.tensors_.count(spec.name))
                    problems.push_back("tensor '" + spec.name + "' is a bf16 weight, but quantization_config quantizes " +
                                       module + " (" + std::to_string(q.bits) + "-bit): expected " + module +
                                       ".qweight, .qzeros, .scales and .g_idx instead");
                continue;
            }
            ++ck.skipped_linears_;
            if (ck.tensors_.count(module + ".qweight")) {
                expected_names.insert(module + ".qweight");
                problems.push_back("tensor '" + module + ".qweight': module " + module + " is left in bf16 by " +
                                   (q.rule.empty() ? std::string("quantization_config") : "dynamic rule \"" + q.rule + "\"") +
                                   ", so it must be stored as '" + spec.name + "'");
            }
        }
        expected_names.insert(spec.name);
        auto it = ck.tensors_.find(spec.name);
        if (it == ck.tensors_.end()) {
            problems.push_back("missing tensor '" + spec.name + "' (expected shape " + shape_string(spec.shape) + ")");
            continue;
        }
        const TensorRef& t = it->second;
        if (t.shape != spec.shape)
            problems.push_back("tensor '" + spec.name + "' has shape " + shape_string(t.shape) +
                               " but the config implies " + shape_string(spec.shape));
        // Every tensor in the config's dtype (a checkpoint never mixes BF16 and F16), norm vectors
        // also in F32; F16 ones become bf16 when bound (model_weights.h).
        const bool dtype_ok = t.dtype == weights_dtype || (spec.role == TensorRole::norm_vector && t.dtype == DType::f32);
        if (!dtype_ok)
            problems.push_back("tensor '" + spec.name + "' has dtype " + dtype_name(t.dtype) + " but " +
                               dtype_name(weights_dtype) + " is required (config.json: dtype \"" + config.dtype + "\")");
    }
    for (const auto& [name, t] : ck.tensors_)
        if (!expected_names.count(name))
            problems.push_back("unexpected tensor '" + name + "' (in " + t.shard + "), not part of this configuration");
    if (!problems.empty()) return join_problems(problems);
    ck.headers_hash_ = headers_hash;
    return ck;
}

void Checkpoint::check_gptq_module(const std::string& module, int64_t in, int64_t out, const ModuleQuant& q,
                                   std::set<std::string>& expected_names, std::vector<std::string>& problems) {
    const size_t before = problems.size();
    for (const GptqTensorSpec& spec : gptq_tensor_specs(module, in, out, q)) {
        expected_names.insert(spec.name);
        auto it = tensors_.find(spec.name);
        if (it == tensors_.end()) {
            problems.push_back("missing tensor '" + spec.name + "' (" + dtype_name(spec.dtype) + " " + shape_string(spec.shape) +
                               ": " + module + " is quantized to " + std::to_string(q.bits) + " bits)");
            continue;
        }
        const TensorRef& t = it->second;
        if (t.dtype != spec.dtype)
            problems.push_back("tensor '" + spec.name + "' has dtype " + dtype_name(t.dtype) + " but " +
                               dtype_name(spec.dtype) + " is required");
        if (t.shape != spec.shape)
            problems.push_back("tensor '" + spec.name + "' has shape " + shape_string(t.shape) + " but " +
                               std::to_string(q.bits) + "-bit GPTQ with group_size " + std::to_string(q.group_size) +
                               " implies " + shape_string(spec.shape));
        // Kernels and the CPU GEMM read the words in place: they must be aligned as their type.
        if (reinterpret_cast<uintptr_t>(t.data) % static_cast<uintptr_t>(dtype_size(spec.dtype)) != 0)
            problems.push_back("tensor '" + spec.name + "' in " + t.shard + " is not aligned to " +
                               std::to_string(dtype_size(spec.dtype)) + " bytes in the file");
    }
    if (problems.size() != before) return;
    const int64_t gs = effective_group_size(q, in);
    bool trivial = true;
    const TensorRef& g_idx = tensors_.at(module + ".g_idx");
    if (!check_g_idx(g_idx.data, in, gs, module + ".g_idx", problems, &trivial)) return;
    if (!check_scales(tensors_.at(module + ".scales").data, in / gs, out, module + ".scales", problems)) return;
    GptqTensors t;
    t.qweight = reinterpret_cast<const int32_t*>(tensors_.at(module + ".qweight").data);
    t.qzeros = reinterpret_cast<const int32_t*>(tensors_.at(module + ".qzeros").data);
    t.scales = reinterpret_cast<const uint16_t*>(tensors_.at(module + ".scales").data);
    t.g_idx = trivial ? nullptr : reinterpret_cast<const int32_t*>(g_idx.data);
    t.in = in;
    t.out = out;
    t.bits = q.bits;
    t.group_size = gs;
    t.zero_offset = config_zero_offset_;
    t.sym = q.sym;
    gptq_[module] = t;
}

const GptqTensors* Checkpoint::find_gptq(const std::string& module) const {
    auto it = gptq_.find(module);
    return it == gptq_.end() ? nullptr : &it->second;
}

const TensorRef* Checkpoint::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

void Checkpoint::release_resident_pages() const {
    for (const auto& m : shards_) m->release_resident_pages();
}

uint64_t Checkpoint::content_hash() const {
    uint64_t h = 0;
    for (const auto& m : shards_) h = hash64(&h, 8, cached_content_hash(m->path(), m->data(), m->size()));
    return h;
}

}  // namespace quire
