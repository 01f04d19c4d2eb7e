#include "gpu_memory_plan.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <regex>

#include "json.h"
#include "model_tensors.h"
#include "sala_geometry.h"

namespace quire {

namespace {

bool is_linear_layer(const TensorSpec& t) {
    // Decoder linear layers; the embedding and lm_head stay as the file has them.
    return t.role == TensorRole::matrix && t.name.rfind("model.layers.", 0) == 0;
}

std::string module_of(const std::string& tensor) {
    const std::string suffix = ".weight";
    return tensor.size() > suffix.size() && tensor.compare(tensor.size() - suffix.size(), suffix.size(), suffix) == 0
               ? tensor.substr(0, tensor.size() - suffix.size())
               : tensor;
}

// What `module` is stored as: (bits, group size), bits 16 when it stays bf16. A folder's own rules
// decide as the loader does (QuantConfig::for_module); a hypothetical format skips by its patterns,
// matched as GPTQModel matches `dynamic` keys (re.match: anchored at the start only).
std::pair<int, int64_t> module_format(const WeightFormat& f, const std::string& module) {
    if (!f.quantized()) return {16, 0};
    if (f.rules) {
        const ModuleQuant q = f.rules->for_module(module);
        return q.quantized ? std::pair<int, int64_t>{q.bits, q.group_size} : std::pair<int, int64_t>{16, 0};
    }
    for (const std::string& pattern : f.skip) {
        try {
            if (std::regex_search(module, std::regex(pattern), std::regex_constants::match_continuous)) return {16, 0};
        } catch (const std::regex_error&) {
            // the skips of gptq() are the project's own patterns; a bad one skips nothing
        }
    }
    return {f.bits, f.group_size};
}

// The decode kernels' scratch (kernels/stage1_split.cu: split_layout; kernels/warp_attention.cu:
// kDecodeAttentionSplitsPlanned shares), for the largest step that takes those paths: 32 / kv_heads
// queries for stage 1, 8 / kv_heads for attention, and only with GQA groups of 16.
int64_t decode_scratch_bytes(const ModelConfig& c, int64_t context) {
    const SparseGeometry g = SparseGeometry::from(c);
    if (c.sparse_layer_count() == 0 || g.group != 16 || g.kv_heads <= 0) return 0;
    const int64_t kTile = 64, kSplits = kDecodeAttentionSplitsPlanned;
    int64_t floats = 0;
    if (const int64_t tokens = 32 / g.kv_heads; tokens > 0) {
        const int64_t items = tokens * g.kv_heads;
        const int64_t n1 = window_entries(context, 32, 16), n2 = window_entries(context, 128, 64);
        const int64_t tiles2 = (n2 + kTile - 1) / kTile;
        floats += items * tiles2 * 32 + items * 32 + items * std::max<int64_t>(n1, 1) + (1 << 20);  // plan_step adds 1 Mi floats
    }
    if (const int64_t tokens = 8 / g.kv_heads; tokens > 0) floats += tokens * g.kv_heads * kSplits * (16 * g.head_dim + 32);
    return floats * 4;
}

}  // namespace

std::vector<std::string> WeightFormat::sala_gate_skips() { return {".*self_attn\\.o_gate.*", ".*self_attn\\.z_proj.*"}; }

std::string WeightFormat::name() const {
    if (!quantized()) return "bf16";
    return "GPTQ INT" + std::to_string(bits) + (group_size > 0 ? " (group " + std::to_string(group_size) + ")" : " (one group per column)");
}

Result<WeightFormat> weight_format_of_config(const std::string& text) {
    auto parsed = parse_json(text);
    if (!parsed) return Status(ErrorCode::invalid_argument, "config.json: " + parsed.status().message());
    const JsonValue* q = parsed.value().find("quantization_config");
    if (!q || q->is_null()) return WeightFormat::bf16();
    // The loader's own parser (engine/quant/quant_config.h): one reading of quantization_config.
    std::vector<std::string> problems;
    QuantConfig config = parse_quant_config(*q, problems);
    if (!problems.empty()) {
        std::string all = "config.json: ";
        for (size_t i = 0; i < problems.size(); ++i) all += (i ? "; " : "") + problems[i];
        return Status(ErrorCode::invalid_argument, all);
    }
    return weight_format_of(config);
}

WeightFormat weight_format_of(const QuantConfig& q) {
    WeightFormat f = WeightFormat::gptq(q.bits, q.group_size, {});
    for (const DynamicRule& r : q.dynamic)
        if (r.skip) f.skip.push_back(r.key.substr(2));  // "-:PATTERN", for descriptions
    f.rules = q;
    return f;
}

WeightFormat weight_format_of(const ModelConfig& c) {
    return c.quantization ? weight_format_of(*c.quantization) : WeightFormat::bf16();
}

int64_t gptq_matrix_bytes(int64_t out, int64_t in, int bits, int64_t group_size) {
    const int64_t groups = group_size > 0 ? (in + group_size - 1) / group_size : 1;
    const int64_t per_word = 32 / bits;
    const int64_t qweight = (in + per_word - 1) / per_word * out * 4;
    const int64_t qzeros = groups * ((out + per_word - 1) / per_word) * 4;
    const int64_t scales = groups * out * 2;
    const int64_t g_idx = in * 4;
    return qweight + qzeros + scales + g_idx;
}

int64_t gpu_weight_bytes(const ModelConfig& c, const WeightFormat& f) {
    int64_t bytes = 0;
    for (const TensorSpec& t : expected_tensors(c)) {
        if (t.role == TensorRole::norm_vector) {
            bytes += t.element_count() * 4;
        } else if (const auto [bits, group] = is_linear_layer(t) ? module_format(f, module_of(t.name)) : std::pair<int, int64_t>{16, 0}; bits < 16) {
            bytes += gptq_matrix_bytes(t.shape[0], t.shape[1], bits, group);
        } else {
            bytes += t.element_count() * 2;
        }
    }
    if (c.lightning_layer_count() > 0) bytes += c.lightning_nh * 8;  // ALiBi slopes
    return bytes;
}

int64_t largest_quantized_matrix(const ModelConfig& c, const WeightFormat& f) {
    int64_t largest = 0;
    if (!f.quantized()) return 0;
    for (const TensorSpec& t : expected_tensors(c))
        if (is_linear_layer(t) && module_format(f, module_of(t.name)).first < 16) largest = std::max(largest, t.element_count());
    return largest;
}

int64_t gptq_gemv_scratch_columns(const ModelConfig& c) {
    const int64_t widest = std::max({c.intermediate_size, c.hidden_size, c.num_attention_heads * c.head_dim, c.lightning_nh * c.lightning_head_dim});
    return 4 * widest;
}

int64_t gptq_gemv_scratch_bytes(const ModelConfig& c, const WeightFormat& f) {
    if (!f.quantized()) return 0;
    const int64_t cols = gptq_gemv_scratch_columns(c);
    return kGptqGemvPartialFloatsPerColumn * cols * 4 + (cols + 31) / 32 * 4;
}

int64_t state_capacity(int64_t tokens) { return (std::max<int64_t>(tokens, 64) + 63) / 64 * 64; }

int64_t sparse_layer_state_bytes(const ModelConfig& c, int64_t capacity) {
    // cuda_sequence.cpp allocate_own: K and V rows, C1 and C2 entries (at least one each), bf16.
    const SparseGeometry g = SparseGeometry::from(c);
    const int64_t width = g.kv_heads * g.head_dim;
    return (2 * capacity + std::max<int64_t>(1, g.c1_entries(capacity)) + std::max<int64_t>(1, g.c2_entries(capacity))) * width * 2;
}

int64_t lightning_state_bytes(const ModelConfig& c) { return c.lightning_nh * c.lightning_head_dim * c.lightning_head_dim * 4; }

int64_t gpu_state_bytes(const ModelConfig& c, int64_t tokens) {
    return c.sparse_layer_count() * sparse_layer_state_bytes(c, state_capacity(tokens)) + c.lightning_layer_count() * lightning_state_bytes(c);
}

namespace {

// The workspace with the dequantization scratch given (it depends on the format, not the context).
WorkspaceBytes workspace_with(const ModelConfig& c, int64_t dequant, int64_t chunk, int64_t context) {
    // cuda_engine.cpp ensure_workspace: x, h, a of hidden width and b0..b4 of the widest projection,
    // bf16, per token of the chunk; token ids; block scores over the grown block count; selections.
    WorkspaceBytes w;
    const int64_t t = std::max<int64_t>(1, std::min(chunk, std::max<int64_t>(context, 1)));
    const int64_t wide = std::max({c.intermediate_size, c.num_attention_heads * c.head_dim, c.lightning_nh * c.lightning_head_dim});
    w.activations = t * (3 * c.hidden_size + 5 * wide) * 2 + t * 4;
    if (c.sparse_layer_count() > 0) {
        const SparseGeometry g = SparseGeometry::from(c);
        const int64_t blocks = g.blocks(context) + 1023;
        w.selection = t * g.kv_heads * blocks * 4 + t * g.kv_heads * c.sparse.effective_topk() * 4;
    }
    w.logits = c.vocab_size * 2;
    // Plus the decode step's own small buffers (sampling scratch, step inputs, a fork's first rows),
    // which the H200 measured at ~30 MiB past the rest of the plan at 469K tokens: 64 MiB kept.
    w.decode_scratch = decode_scratch_bytes(c, context) + kDecodeBuffersBytes;
    w.dequant = dequant;
    w.cublas = kCublasWorkspaceBytes;
    return w;
}

GpuMemoryPlan plan_with(const ModelConfig& c, int64_t weights, int64_t dequant, int64_t context, int64_t chunk) {
    GpuMemoryPlan p;
    p.context = context;
    p.chunk = chunk;
    p.weights = weights;
    p.state = gpu_state_bytes(c, context);
    p.workspace = workspace_with(c, dequant, chunk, context);
    return p;
}

// A quantized model's workspace beside the activations: prefill's bf16 copy of its largest layer
// and the 4-bit GEMV's split scratch (WorkspaceBytes::dequant); 0 for bf16 weights.
int64_t quantized_scratch_bytes(const ModelConfig& c, const WeightFormat& f) {
    return largest_quantized_matrix(c, f) * 2 + gptq_gemv_scratch_bytes(c, f);
}

}  // namespace

WorkspaceBytes gpu_workspace_bytes(const ModelConfig& c, const WeightFormat& f, int64_t chunk, int64_t context) {
    return workspace_with(c, quantized_scratch_bytes(c, f), chunk, context);
}

GpuMemoryPlan plan_gpu_memory(const ModelConfig& c, const WeightFormat& f, int64_t context, int64_t chunk) {
    return plan_with(c, gpu_weight_bytes(c, f), quantized_scratch_bytes(c, f), context, chunk);
}

int64_t longest_context_within(const ModelConfig& c, const WeightFormat& f, int64_t budget, int64_t chunk, int64_t limit) {
    // The plan grows with the context: the largest multiple of 64 that fits, by bisection (the
    // weights and the dequantization scratch, which do not depend on it, counted once).
    const int64_t weights = gpu_weight_bytes(c, f), dequant = quantized_scratch_bytes(c, f);
    const auto fits = [&](int64_t units) { return plan_with(c, weights, dequant, units * 64, chunk).total() <= budget; };
    if (budget <= 0 || !fits(1)) return 0;
    int64_t lo = 1, hi = std::max<int64_t>(1, limit / 64);  // in units of 64 tokens; lo fits
    if (fits(hi)) return hi * 64;
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo * 64;
}

std::string format_gib(int64_t bytes) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / double(1LL << 30));
    return buf;
}

std::string describe_plan(const GpuMemoryPlan& p) {
    return "weights " + format_gib(p.weights) + " + state " + format_gib(p.state) + " + workspace " + format_gib(p.workspace.total()) +
           " + CUDA context " + format_gib(p.context_overhead) + " = " + format_gib(p.total());
}

Result<int64_t> parse_gpu_memory_gib(const std::string& typed) {
    const size_t first = typed.find_first_not_of(" \t"), last = typed.find_last_not_of(" \t");
    const std::string text = first == std::string::npos ? std::string() : typed.substr(first, last - first + 1);
    const std::string what = "--gpu-memory takes GiB of GPU memory (for example 24 or 23.5)";
    if (text.empty()) return Status(ErrorCode::invalid_argument, what + "; it was empty");
    // from_chars: decimal only (no "0x18"), whatever the locale; an overflow is "too large", not "not a number".
    double gib = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), gib);
    if (ec == std::errc::result_out_of_range && end == text.data() + text.size()) {
        const size_t e = text.find_first_of("eE");
        if (text[0] == '-') return Status(ErrorCode::invalid_argument, what + "; it must be more than 0, not " + text);
        if ((e != std::string::npos && e + 1 < text.size() && text[e + 1] == '-') || text[0] == '0' || text[0] == '.')
            return Status(ErrorCode::invalid_argument, what + "; it must be at least 1, not " + text);
        return Status(ErrorCode::invalid_argument, what + "; " + text + " GiB is more than any GPU has (at most 65536)");
    }
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(gib))
        return Status(ErrorCode::invalid_argument, what + "; \"" + text + "\" is not a number");
    if (gib <= 0) return Status(ErrorCode::invalid_argument, what + "; it must be more than 0, not " + text);
    // Below 1 GiB nothing fits (the CUDA context alone takes ~0.6 GiB), and a tiny value such as
    // 1e-10 would round to 0 bytes, which means "no budget".
    if (gib < 1) return Status(ErrorCode::invalid_argument, what + "; it must be at least 1, not " + text);
    if (gib > 65536) return Status(ErrorCode::invalid_argument, what + "; " + text + " GiB is more than any GPU has (at most 65536)");
    return static_cast<int64_t>(gib * double(1LL << 30));
}

}  // namespace quire
