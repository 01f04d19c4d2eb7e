#include "sala_forward.h"

#include <string>

namespace quire {

namespace {

// Lightning linear attention (docs/model.md §2.5, §4).
Status lightning_mixer(const ModelConfig& c, SalaOps& ops, const StepShape& s, int64_t l) {
    const int64_t width = c.lightning_nh * c.lightning_head_dim;
    // q, k, v and the output gate's projection all read h.
    const LinearOut qkv[] = {{Linear::q, Act::q}, {Linear::k, Act::k}, {Linear::v, Act::v}, {Linear::out_gate, Act::g}};
    QUIRE_TRY(ops.linears(l, Act::h, std::span(qkv, c.use_output_gate ? 4 : 3)));
    if (c.qk_norm || c.lightning_use_rope) QUIRE_TRY(ops.qk_norm_rope(s, l));  // per-head norms, then RoPE
    QUIRE_TRY(ops.lightning(s, l));
    if (c.use_output_norm) QUIRE_TRY(ops.rms_norm(Act::o, l, Norm::o, s.n, width, Act::o));  // all heads jointly
    if (c.use_output_gate) QUIRE_TRY(ops.sigmoid_gate(Act::o, Act::g, s.n * width));
    return ops.linear(l, Linear::o, Act::o, Act::a);
}

// InfLLM-v2 sparse attention, dense below the regime boundary (docs/model.md §2.4, §3).
Status sparse_mixer(const ModelConfig& c, SalaOps& ops, const StepShape& s, int64_t l) {
    const LinearOut q_gate[] = {{Linear::q, Act::q}, {Linear::out_gate, Act::g}};
    QUIRE_TRY(ops.linears(l, Act::h, std::span(q_gate, c.attn_use_output_gate ? 2 : 1)));
    QUIRE_TRY(ops.append_kv(s, l));
    if (s.first_sparse < s.n) QUIRE_TRY(ops.select_blocks(s, l));
    QUIRE_TRY(ops.sparse_attention(s, l));
    if (c.attn_use_output_gate) QUIRE_TRY(ops.sigmoid_gate(Act::o, Act::g, s.n * c.num_attention_heads * c.head_dim));
    return ops.linear(l, Linear::o, Act::o, Act::a);
}

// SwiGLU MLP (docs/model.md §2.1): a = down(silu(gate(h)) * up(h)).
Status mlp(const ModelConfig& c, SalaOps& ops, const StepShape& s, int64_t l) {
    const LinearOut gate_up[] = {{Linear::mlp_gate, Act::g}, {Linear::mlp_up, Act::up}};
    QUIRE_TRY(ops.linears(l, Act::h, gate_up));
    QUIRE_TRY(ops.silu_mul(s.n * c.intermediate_size));
    return ops.linear(l, Linear::mlp_down, Act::g, Act::a);
}

}  // namespace

Status sala_forward(const ModelConfig& c, SalaOps& ops, const StepShape& s, std::vector<std::vector<float>>* logits) {
    const int64_t layers = c.num_hidden_layers, H = c.hidden_size;
    const auto r = static_cast<float>(c.residual_scale());
    for (int64_t t = 0; t < s.n; ++t)
        if (s.ids[t] < 0 || s.ids[t] >= c.vocab_size)
            return Status(ErrorCode::invalid_argument, "token id " + std::to_string(s.ids[t]) + " at position " +
                                                           std::to_string(s.pos0 + t) + " is outside the vocabulary of " +
                                                           std::to_string(c.vocab_size));
    QUIRE_TRY(ops.embed(s));
    QUIRE_TRY(ops.rms_norm(Act::x, 0, Norm::input, s.n, H, Act::h));
    for (int64_t l = 0; l < layers; ++l) {
        if (c.mixer_types[static_cast<size_t>(l)] == MixerType::lightning) QUIRE_TRY(lightning_mixer(c, ops, s, l));
        else QUIRE_TRY(sparse_mixer(c, ops, s, l));
        QUIRE_TRY(ops.add_rms_norm(r, l, Norm::post));  // x += a * r; h = post_norm(x)
        QUIRE_TRY(mlp(c, ops, s, l));
        // x += a * r, and the next layer's input norm in the same pass.
        if (l + 1 < layers) QUIRE_TRY(ops.add_rms_norm(r, l + 1, Norm::input));
        else QUIRE_TRY(ops.residual_add(r));
    }
    QUIRE_TRY(ops.commit(s));
    if (s.logit_rows.empty() || !logits) return Status::ok();
    return ops.logits(s, logits);
}

}  // namespace quire
