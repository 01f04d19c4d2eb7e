#include "cpu/cpu_sala_ops.h"

#include <algorithm>
#include <cstring>

#include "bf16.h"
#include "cpu/cpu_ops.h"
#include "cpu/infllm_v2.h"
#include "cpu/vec_math.h"
#include "cpu/lightning_attention.h"

namespace quire::cpu {

CpuSalaOps::CpuSalaOps(const CpuModelView& view, CpuSequence& seq, int64_t n)
    : view_(view), config_(view.model->config()), seq_(seq), n_(n) {
    const ModelConfig& c = config_;
    const int64_t wide = std::max({c.intermediate_size, c.num_attention_heads * c.head_dim, c.lightning_nh * c.lightning_head_dim});
    for (size_t i = 0; i < bufs_.size(); ++i) {
        const auto a = static_cast<Act>(i);
        const bool hidden = a == Act::x || a == Act::h || a == Act::a;
        bufs_[i].assign(static_cast<size_t>(n * (hidden ? c.hidden_size : wide)), 0.0f);
    }
}

const std::vector<float>& CpuSalaOps::norm_weights(int64_t layer, Norm norm) const {
    const ModelWeights& W = view_.model->weights();
    if (norm == Norm::final) return W.final_norm;
    const LayerWeights& w = W.layers[static_cast<size_t>(layer)];
    switch (norm) {
    case Norm::input: return w.input_norm;
    case Norm::post: return w.post_norm;
    case Norm::q_head: return w.q_norm;
    case Norm::k_head: return w.k_norm;
    case Norm::o: return w.o_norm;
    case Norm::final: break;
    }
    return W.final_norm;
}

const MatrixRef& CpuSalaOps::matrix(int64_t layer, Linear which) const {
    const LayerWeights& w = view_.model->weights().layers[static_cast<size_t>(layer)];
    switch (which) {
    case Linear::q: return w.q;
    case Linear::k: return w.k;
    case Linear::v: return w.v;
    case Linear::o: return w.o;
    case Linear::out_gate: return w.gate;
    case Linear::mlp_gate: return w.mlp_gate;
    case Linear::mlp_up: return w.mlp_up;
    case Linear::mlp_down: return w.mlp_down;
    }
    return w.q;
}

Status CpuSalaOps::embed(const StepShape& s) {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size;
    const MatrixRef& E = view_.model->weights().embed;
    const auto scale = static_cast<float>(c.scale_emb);
    float* x = buf(Act::x);
    for (int64_t t = 0; t < s.n; ++t) {
        bf16_to_float_row(E.data + static_cast<int64_t>(s.ids[t]) * H, x + t * H, H);
        for (int64_t i = 0; i < H; ++i) {
            float& e = x[t * H + i];
            e = view_.round ? round_bf16(e * scale) : e * scale;
        }
    }
    return Status::ok();
}

Status CpuSalaOps::rms_norm(Act in, int64_t layer, Norm norm, int64_t rows, int64_t width, Act out) {
    cpu::rms_norm(buf(in), norm_weights(layer, norm).data(), rows, width, config_.rms_norm_eps, buf(out), view_.round);
    return Status::ok();
}

Status CpuSalaOps::add_rms_norm(float scale, int64_t layer, Norm norm) {
    QUIRE_TRY(residual_add(scale));
    return rms_norm(Act::x, layer, norm, n_, config_.hidden_size, Act::h);
}

Status CpuSalaOps::residual_add(float scale) {
    cpu::residual_add(buf(Act::x), buf(Act::a), scale, n_ * config_.hidden_size, view_.round);
    return Status::ok();
}

Status CpuSalaOps::linear(int64_t layer, Linear which, Act in, Act out) {
    const MatrixRef& m = matrix(layer, which);
    if (view_.observer && *view_.observer) QUIRE_TRY((*view_.observer)(layer, which, buf(in), n_, m.cols));
    if (m.quantized()) matmul_gptq(*view_.pool, buf(in), n_, m.gptq, buf(out), view_.round);
    else matmul_bf16(*view_.pool, buf(in), n_, m.cols, m.data, m.rows, buf(out), view_.round);
    return Status::ok();
}

Status CpuSalaOps::linears(int64_t layer, Act in, std::span<const LinearOut> outs) {
    for (const LinearOut& o : outs) QUIRE_TRY(linear(layer, o.which, in, o.out));
    return Status::ok();
}

Status CpuSalaOps::qk_norm_rope(const StepShape& s, int64_t layer) {
    const ModelConfig& c = config_;
    const int64_t heads = c.lightning_nh, d = c.lightning_head_dim;
    if (c.qk_norm) {
        QUIRE_TRY(rms_norm(Act::q, layer, Norm::q_head, s.n * heads, d, Act::q));
        QUIRE_TRY(rms_norm(Act::k, layer, Norm::k_head, s.n * heads, d, Act::k));
    }
    if (c.lightning_use_rope) {
        cpu::rope(buf(Act::q), s.n, heads, d, s.pos0, c.rope_theta, view_.round);
        cpu::rope(buf(Act::k), s.n, heads, d, s.pos0, c.rope_theta, view_.round);
    }
    return Status::ok();
}

Status CpuSalaOps::lightning(const StepShape& s, int64_t layer) {
    const ModelConfig& c = config_;
    const int64_t nh = c.lightning_nh, d = c.lightning_head_dim;
    const auto slot = static_cast<size_t>(view_.slot[static_cast<size_t>(layer)]);
    lightning_attention(*view_.pool, buf(Act::q), buf(Act::k), buf(Act::v), s.n, s.pos0, nh, d, d, view_.slopes,
                        seq_.lightning_[slot].data(), buf(Act::o));
    round_rows(buf(Act::o), s.n * nh * d, view_.round);  // the fp32 GLA output becomes bf16 (§2.5)
    return Status::ok();
}

Status CpuSalaOps::append_kv(const StepShape& s, int64_t layer) {
    QUIRE_TRY(linear(layer, Linear::k, Act::h, Act::k));
    QUIRE_TRY(linear(layer, Linear::v, Act::h, Act::v));
    const int64_t width = config_.num_key_value_heads * config_.head_dim;
    SparseLayerState& st = sparse_state(layer);
    for (int64_t t = 0; t < s.n; ++t) {
        st.k.append(buf(Act::k) + t * width);
        st.v.append(buf(Act::v) + t * width);
    }
    update_compressed_keys(st.k, st.k.size(), view_.geometry, view_.round, st.c1, st.c2);
    return Status::ok();
}

Status CpuSalaOps::select_blocks(const StepShape& s, int64_t layer) {
    SelectionProbe probe;
    if (view_.probe && *view_.probe)
        probe = [&](int64_t p, int64_t kv, const std::vector<int64_t>& b, float m) { (*view_.probe)(layer, p, kv, b, m); };
    selected_ = select_sparse_blocks(*view_.pool, buf(Act::q), s.n, s.pos0, s.first_sparse, sparse_state(layer), view_.geometry,
                                     view_.round, probe ? &probe : nullptr);
    return Status::ok();
}

Status CpuSalaOps::sparse_attention(const StepShape& s, int64_t layer) {
    if (s.first_sparse >= s.n) selected_.clear();
    sparse_layer_attention(*view_.pool, buf(Act::q), s.n, s.pos0, sparse_state(layer), view_.geometry, s.first_sparse, selected_,
                           view_.round, buf(Act::o));
    return Status::ok();
}

Status CpuSalaOps::sigmoid_gate(Act out, Act gate, int64_t count) {
    cpu::sigmoid_gate(buf(out), buf(gate), count, view_.round);
    return Status::ok();
}

Status CpuSalaOps::silu_mul(int64_t count) {
    cpu::silu_mul(buf(Act::g), buf(Act::up), count, buf(Act::g), view_.round);
    return Status::ok();
}

Status CpuSalaOps::commit(const StepShape& s) {
    if (seq_.sparse_from_ < 0 && s.first_sparse < s.n) seq_.sparse_from_ = s.pos0 + s.first_sparse;
    seq_.tokens_.insert(seq_.tokens_.end(), s.ids, s.ids + s.n);
    return Status::ok();
}

Status CpuSalaOps::logits(const StepShape& s, std::vector<std::vector<float>>* out) {
    const ModelConfig& c = config_;
    const ModelWeights& W = view_.model->weights();
    const int64_t H = c.hidden_size, m = static_cast<int64_t>(s.logit_rows.size());
    std::vector<float> sel(static_cast<size_t>(m * H));
    for (int64_t i = 0; i < m; ++i)
        std::memcpy(sel.data() + i * H, buf(Act::x) + s.logit_rows[static_cast<size_t>(i)] * H, static_cast<size_t>(H) * 4);
    cpu::rms_norm(sel.data(), W.final_norm.data(), m, H, c.rms_norm_eps, sel.data(), view_.round);
    const auto div = static_cast<float>(c.logit_divisor());
    for (auto& e : sel) e = view_.round ? round_bf16(e / div) : e / div;
    std::vector<float> all(static_cast<size_t>(m * c.vocab_size));
    matmul_bf16(*view_.pool, sel.data(), m, H, W.lm_head.data, c.vocab_size, all.data(), view_.round);
    for (int64_t i = 0; i < m; ++i) out->emplace_back(all.begin() + i * c.vocab_size, all.begin() + (i + 1) * c.vocab_size);
    return Status::ok();
}

}  // namespace quire::cpu
