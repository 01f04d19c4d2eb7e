#include "cpu/cpu_engine.h"

#include <cmath>
#include <cstring>

#include "bf16.h"
#include "cpu/cpu_ops.h"
#include "cpu/lightning_attention.h"
#include "cpu/sparse_attention.h"
#include "cpu/vec_math.h"
#include "prefill_loop.h"
#include "state_file.h"

namespace quire::cpu {

namespace {
CpuSequence& as_cpu(Sequence& s) { return static_cast<CpuSequence&>(s); }
const CpuSequence& as_cpu(const Sequence& s) { return static_cast<const CpuSequence&>(s); }
}  // namespace

CpuEngine::CpuEngine(std::shared_ptr<const Model> model, const EngineOptions& options)
    : model_(std::move(model)), options_(options), pool_(options.threads) {
    const ModelConfig& c = model_->config();
    geometry_ = SparseGeometry::from(c);
    slopes_ = alibi_slopes(c.lightning_nh);
    int64_t ns = 0, nl = 0;
    for (MixerType t : c.mixer_types) slot_.push_back(t == MixerType::sparse ? ns++ : nl++);
}

std::unique_ptr<Sequence> CpuEngine::new_sequence() { return std::make_unique<CpuSequence>(model_->config()); }

void CpuEngine::mlp(const LayerWeights& w, const float* h, int64_t n, float* out) {
    const ModelConfig& c = model_->config();
    const int64_t I = c.intermediate_size;
    std::vector<float> gate(static_cast<size_t>(n * I)), up(static_cast<size_t>(n * I));
    matmul_bf16(pool_, h, n, c.hidden_size, w.mlp_gate.data, I, gate.data(), round());
    matmul_bf16(pool_, h, n, c.hidden_size, w.mlp_up.data, I, up.data(), round());
    silu_mul(gate.data(), up.data(), n * I, gate.data(), round());
    matmul_bf16(pool_, gate.data(), n, I, w.mlp_down.data, c.hidden_size, out, round());
}

void CpuEngine::sparse_mixer(CpuSequence& seq, const LayerWeights& w, int64_t layer, const float* h, int64_t n, int64_t pos0,
                             int64_t request_end, float* out) {
    const ModelConfig& c = model_->config();
    const int64_t H = c.hidden_size, qw = c.num_attention_heads * c.head_dim, kvw = c.num_key_value_heads * c.head_dim;
    std::vector<float> q(static_cast<size_t>(n * qw)), k(static_cast<size_t>(n * kvw)), v(static_cast<size_t>(n * kvw));
    matmul_bf16(pool_, h, n, H, w.q.data, qw, q.data(), round());
    matmul_bf16(pool_, h, n, H, w.k.data, kvw, k.data(), round());
    matmul_bf16(pool_, h, n, H, w.v.data, kvw, v.data(), round());
    SparseLayerState& st = seq.sparse_[static_cast<size_t>(slot_[static_cast<size_t>(layer)])];
    for (int64_t t = 0; t < n; ++t) {
        st.k.append(k.data() + t * kvw);
        st.v.append(v.data() + t * kvw);
    }
    update_compressed_keys(st.k, st.k.size(), geometry_, round(), st.c1, st.c2);

    const int64_t dense_len = c.sparse.dense_len;
    const bool request_sparse = request_end >= dense_len;
    const auto rule = options_.regime;
    auto is_sparse = [&](int64_t p) { return rule == RegimeRule::per_query ? p + 1 >= dense_len : request_sparse; };
    std::vector<float> attn(static_cast<size_t>(n * qw));
    SelectionProbe probe;
    if (probe_) probe = [&](int64_t p, int64_t kv, const std::vector<int64_t>& b, float m) { probe_(layer, p, kv, b, m); };
    sparse_layer_attention(pool_, q.data(), n, pos0, st, geometry_, is_sparse, round(), attn.data(), probe_ ? &probe : nullptr);
    if (w.gate.data) {
        std::vector<float> g(static_cast<size_t>(n * qw));
        matmul_bf16(pool_, h, n, H, w.gate.data, qw, g.data(), round());
        sigmoid_gate(attn.data(), g.data(), n * qw, round());
    }
    matmul_bf16(pool_, attn.data(), n, qw, w.o.data, H, out, round());
}

void CpuEngine::lightning_mixer(CpuSequence& seq, const LayerWeights& w, int64_t slot, const float* h, int64_t n,
                                int64_t pos0, float* out) {
    const ModelConfig& c = model_->config();
    const int64_t H = c.hidden_size, nh = c.lightning_nh, d = c.lightning_head_dim, width = nh * d;
    std::vector<float> q(static_cast<size_t>(n * width)), k(static_cast<size_t>(n * width)), v(static_cast<size_t>(n * width));
    matmul_bf16(pool_, h, n, H, w.q.data, width, q.data(), round());
    matmul_bf16(pool_, h, n, H, w.k.data, width, k.data(), round());
    matmul_bf16(pool_, h, n, H, w.v.data, width, v.data(), round());
    if (!w.q_norm.empty()) {
        rms_norm(q.data(), w.q_norm.data(), n * nh, d, c.rms_norm_eps, q.data(), round());
        rms_norm(k.data(), w.k_norm.data(), n * nh, d, c.rms_norm_eps, k.data(), round());
    }
    if (c.lightning_use_rope) {
        rope(q.data(), n, nh, d, pos0, c.rope_theta, round());
        rope(k.data(), n, nh, d, pos0, c.rope_theta, round());
    }
    std::vector<float> o(static_cast<size_t>(n * width));
    lightning_attention(pool_, q.data(), k.data(), v.data(), n, pos0, nh, d, d, slopes_,
                        seq.lightning_[static_cast<size_t>(slot)].data(), o.data());
    round_rows(o.data(), n * width, round());
    if (!w.o_norm.empty()) rms_norm(o.data(), w.o_norm.data(), n, width, c.rms_norm_eps, o.data(), round());
    if (w.gate.data) {
        std::vector<float> z(static_cast<size_t>(n * width));
        matmul_bf16(pool_, h, n, H, w.gate.data, width, z.data(), round());
        sigmoid_gate(o.data(), z.data(), n * width, round());
    }
    matmul_bf16(pool_, o.data(), n, width, w.o.data, H, out, round());
}

Status CpuEngine::forward(CpuSequence& seq, const int32_t* ids, int64_t n, int64_t request_end,
                          const std::vector<int64_t>& rows, std::vector<std::vector<float>>* logits) {
    const ModelConfig& c = model_->config();
    const ModelWeights& W = model_->weights();
    const int64_t H = c.hidden_size, pos0 = seq.length();
    for (int64_t t = 0; t < n; ++t)
        if (ids[t] < 0 || ids[t] >= c.vocab_size)
            return Status(ErrorCode::invalid_argument, "token id " + std::to_string(ids[t]) + " at position " +
                                                           std::to_string(pos0 + t) + " is outside the vocabulary of " +
                                                           std::to_string(c.vocab_size));
    std::vector<float> x(static_cast<size_t>(n * H)), h(static_cast<size_t>(n * H)), a(static_cast<size_t>(n * H));
    for (int64_t t = 0; t < n; ++t) {
        bf16_to_float_row(W.embed.data + static_cast<int64_t>(ids[t]) * H, x.data() + t * H, H);
        for (int64_t i = 0; i < H; ++i) {
            float& e = x[static_cast<size_t>(t * H + i)];
            e = round() ? round_bf16(e * static_cast<float>(c.scale_emb)) : e * static_cast<float>(c.scale_emb);
        }
    }
    const auto r = static_cast<float>(c.residual_scale());
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& w = W.layers[static_cast<size_t>(l)];
        const int64_t slot = slot_[static_cast<size_t>(l)];
        rms_norm(x.data(), w.input_norm.data(), n, H, c.rms_norm_eps, h.data(), round());
        if (w.kind == MixerType::sparse) sparse_mixer(seq, w, l, h.data(), n, pos0, request_end, a.data());
        else lightning_mixer(seq, w, slot, h.data(), n, pos0, a.data());
        residual_add(x.data(), a.data(), r, n * H, round());
        rms_norm(x.data(), w.post_norm.data(), n, H, c.rms_norm_eps, h.data(), round());
        mlp(w, h.data(), n, a.data());
        residual_add(x.data(), a.data(), r, n * H, round());
    }
    // Regime bookkeeping for the state file.
    if (seq.sparse_from_ < 0) {
        for (int64_t t = 0; t < n; ++t) {
            const int64_t p = pos0 + t;
            const bool sparse = options_.regime == RegimeRule::per_query ? p + 1 >= c.sparse.dense_len
                                                                          : request_end >= c.sparse.dense_len;
            if (sparse) {
                seq.sparse_from_ = p;
                break;
            }
        }
    }
    seq.tokens_.insert(seq.tokens_.end(), ids, ids + n);
    counters_.forward_calls++;

    if (!rows.empty() && logits) {
        const auto m = static_cast<int64_t>(rows.size());
        std::vector<float> sel(static_cast<size_t>(m * H));
        for (int64_t i = 0; i < m; ++i)
            std::memcpy(sel.data() + i * H, x.data() + rows[static_cast<size_t>(i)] * H, static_cast<size_t>(H) * 4);
        rms_norm(sel.data(), W.final_norm.data(), m, H, c.rms_norm_eps, sel.data(), round());
        const auto div = static_cast<float>(c.logit_divisor());
        for (auto& e : sel) e = round() ? round_bf16(e / div) : e / div;
        std::vector<float> out(static_cast<size_t>(m * c.vocab_size));
        matmul_bf16(pool_, sel.data(), m, H, W.lm_head.data, c.vocab_size, out.data(), round());
        for (int64_t i = 0; i < m; ++i)
            logits->emplace_back(out.begin() + i * c.vocab_size, out.begin() + (i + 1) * c.vocab_size);
    }
    return Status::ok();
}

Status CpuEngine::prefill(Sequence& s, const PrefillRequest& req, std::vector<std::vector<float>>* logits) {
    CpuSequence& seq = as_cpu(s);
    auto step = [&](const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                    std::vector<std::vector<float>>* out) { return forward(seq, ids, n, request_end, rows, out); };
    return run_chunked_prefill(req, seq.length(), step, counters_, logits);
}

Status CpuEngine::decode(Sequence& s, int32_t token, std::vector<float>* logits) {
    CpuSequence& seq = as_cpu(s);
    std::vector<std::vector<float>> got;
    QUIRE_TRY(forward(seq, &token, 1, seq.length() + 1, {0}, &got));
    counters_.decoded_tokens++;
    if (logits) *logits = std::move(got[0]);
    return Status::ok();
}

namespace {
std::vector<uint8_t> rows_bytes(const PagedRows& rows) {
    std::vector<uint8_t> b(static_cast<size_t>(rows.size() * rows.width() * 4));
    for (int64_t i = 0; i < rows.size(); ++i)
        std::memcpy(b.data() + i * rows.width() * 4, rows.row(i), static_cast<size_t>(rows.width()) * 4);
    return b;
}
Status fill_rows(const StateSection& s, int64_t expected_rows, PagedRows& rows, const std::string& what) {
    const int64_t w = rows.width();
    const int64_t elem = s.dtype == SectionDType::bf16 ? 2 : 4;
    if ((s.dtype != SectionDType::f32 && s.dtype != SectionDType::bf16) ||
        static_cast<int64_t>(s.bytes.size()) != expected_rows * w * elem)
        return Status(ErrorCode::state_malformed, what + " has " + std::to_string(s.bytes.size()) + " bytes, expected " +
                                                      std::to_string(expected_rows * w * elem));
    rows.clear();
    std::vector<float> row(static_cast<size_t>(w));
    for (int64_t i = 0; i < expected_rows; ++i) {
        if (elem == 4) {
            std::memcpy(row.data(), s.bytes.data() + i * w * 4, static_cast<size_t>(w) * 4);
        } else {
            for (int64_t j = 0; j < w; ++j) {
                uint16_t b;
                std::memcpy(&b, s.bytes.data() + (i * w + j) * 2, 2);
                row[static_cast<size_t>(j)] = bf16_to_float(b);
            }
        }
        rows.append(row.data());
    }
    return Status::ok();
}
}  // namespace

Status CpuEngine::save_state(const Sequence& s, const std::string& path) {
    const CpuSequence& seq = as_cpu(s);
    const ModelConfig& c = model_->config();
    const StateHeader h = make_state_header(model_->fingerprint(), static_cast<uint32_t>(options_.precision),
                                            static_cast<uint32_t>(options_.regime), seq.tokens_, seq.sparse_from_);
    std::vector<StateSection> sections;
    sections.push_back(make_token_section(seq.tokens_));
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const auto slot = static_cast<size_t>(slot_[static_cast<size_t>(l)]);
        const auto layer = static_cast<uint32_t>(l);
        if (c.mixer_types[static_cast<size_t>(l)] == MixerType::lightning) {
            StateSection st{SectionKind::lightning_state, layer, SectionDType::f32, {}};
            const auto& S = seq.lightning_[slot];
            st.bytes.resize(S.size() * 4);
            std::memcpy(st.bytes.data(), S.data(), st.bytes.size());
            sections.push_back(std::move(st));
        } else {
            const SparseLayerState& sp = seq.sparse_[slot];
            sections.push_back({SectionKind::sparse_k, layer, SectionDType::f32, rows_bytes(sp.k)});
            sections.push_back({SectionKind::sparse_v, layer, SectionDType::f32, rows_bytes(sp.v)});
            sections.push_back({SectionKind::sparse_c1, layer, SectionDType::f32, rows_bytes(sp.c1)});
            sections.push_back({SectionKind::sparse_c2, layer, SectionDType::f32, rows_bytes(sp.c2)});
        }
    }
    return write_state_file(path, h, sections);
}

Result<std::unique_ptr<Sequence>> CpuEngine::load_state(const std::string& path, const std::vector<int32_t>* expected_tokens) {
    auto loaded = read_state_file(path, {model_->fingerprint(), static_cast<uint32_t>(options_.precision),
                                          static_cast<uint32_t>(options_.regime), expected_tokens});
    if (!loaded) return loaded.status();
    const ModelConfig& c = model_->config();
    const int64_t N = loaded->header.token_count;
    auto seq = std::make_unique<CpuSequence>(c);
    seq->sparse_from_ = loaded->header.sparse_from;
    auto entries = [](int64_t n, int64_t kernel, int64_t stride) { return n < kernel ? 0 : (n - kernel) / stride + 1; };
    std::vector<int> seen(static_cast<size_t>(c.num_hidden_layers) * 8, 0);
    bool have_tokens = false;
    for (const auto& s : loaded->sections) {
        const std::string what = path + ": " + section_kind_name(s.kind) + " section of layer " + std::to_string(s.layer);
        if (s.kind == SectionKind::tokens) {
            seq->tokens_.resize(s.bytes.size() / 4);
            std::memcpy(seq->tokens_.data(), s.bytes.data(), seq->tokens_.size() * 4);
            have_tokens = true;
            continue;
        }
        if (s.layer >= static_cast<uint32_t>(c.num_hidden_layers) || static_cast<uint32_t>(s.kind) > 7)
            return Status(ErrorCode::state_malformed, what + " names a layer this model does not have");
        seen[s.layer * 8 + static_cast<uint32_t>(s.kind)]++;
        const auto slot = static_cast<size_t>(slot_[s.layer]);
        const bool lightning = c.mixer_types[s.layer] == MixerType::lightning;
        if (s.kind == SectionKind::lightning_state) {
            auto& S = seq->lightning_.at(lightning ? slot : 0);
            if (!lightning || s.dtype != SectionDType::f32 || s.bytes.size() != S.size() * 4)
                return Status(ErrorCode::state_malformed, what + " does not match the layer");
            std::memcpy(S.data(), s.bytes.data(), s.bytes.size());
            continue;
        }
        if (lightning) return Status(ErrorCode::state_malformed, what + ": a Lightning layer has no KV section");
        SparseLayerState& sp = seq->sparse_[slot];
        Status st;
        switch (s.kind) {
        case SectionKind::sparse_k: st = fill_rows(s, N, sp.k, what); break;
        case SectionKind::sparse_v: st = fill_rows(s, N, sp.v, what); break;
        case SectionKind::sparse_c1: st = fill_rows(s, entries(N, geometry_.c1_kernel, geometry_.c1_stride), sp.c1, what); break;
        case SectionKind::sparse_c2: st = fill_rows(s, entries(N, geometry_.c2_kernel, geometry_.c2_stride), sp.c2, what); break;
        default: st = Status(ErrorCode::state_malformed, what + ": unknown section kind");
        }
        QUIRE_TRY(st);
    }
    if (!have_tokens) return Status(ErrorCode::state_malformed, path + ": no token section");
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const bool lightning = c.mixer_types[static_cast<size_t>(l)] == MixerType::lightning;
        const std::vector<SectionKind> want = lightning ? std::vector<SectionKind>{SectionKind::lightning_state}
                                                        : std::vector<SectionKind>{SectionKind::sparse_k, SectionKind::sparse_v,
                                                                                   SectionKind::sparse_c1, SectionKind::sparse_c2};
        for (SectionKind k : want)
            if (seen[static_cast<size_t>(l) * 8 + static_cast<uint32_t>(k)] != 1)
                return Status(ErrorCode::state_malformed, path + ": layer " + std::to_string(l) + " needs exactly one " +
                                                              section_kind_name(k) + " section");
    }
    return std::unique_ptr<Sequence>(std::move(seq));
}

}  // namespace quire::cpu
