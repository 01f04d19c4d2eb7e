#include "cuda/cuda_sala_ops.h"

#include <algorithm>
#include <optional>

#include "attention_ops.h"
#include "bf16.h"
#include "embedding.h"
#include "gemv.h"
#include "gptq_gemv_mma.h"
#include "norm_ops.h"
#include "sampling.h"

namespace quire::cuda {

uint16_t* CudaSalaOps::buf(Act a) {
    CudaEngine::Workspace& w = e_.ws_;
    switch (a) {
    case Act::x: return w.x.get();
    case Act::h: return w.h.get();
    case Act::a: return w.a.get();
    case Act::q: return w.b0.get();
    case Act::k: return w.b1.get();
    case Act::v: return w.b2.get();
    case Act::o: return w.b3.get();
    case Act::g: return w.b4.get();
    case Act::up: return w.b1.get();  // the MLP runs after the mixer is done with k
    }
    return nullptr;
}

const float* CudaSalaOps::norm_weights(int64_t layer, Norm norm) const {
    if (norm == Norm::final) return e_.final_norm_.get();
    const CudaEngine::Layer& L = e_.layers_[static_cast<size_t>(layer)];
    switch (norm) {
    case Norm::input: return L.input_norm.get();
    case Norm::post: return L.post_norm.get();
    case Norm::q_head: return L.q_norm.get();
    case Norm::k_head: return L.k_norm.get();
    case Norm::o: return L.o_norm.get();
    case Norm::final: break;
    }
    return nullptr;
}

const CudaEngine::Matrix& CudaSalaOps::matrix(int64_t layer, Linear which) const {
    const CudaEngine::Layer& L = e_.layers_[static_cast<size_t>(layer)];
    switch (which) {
    case Linear::q: return L.q;
    case Linear::k: return L.k;
    case Linear::v: return L.v;
    case Linear::o: return L.o;
    case Linear::out_gate: return L.gate;
    case Linear::mlp_gate: return L.mlp_gate;
    case Linear::mlp_up: return L.mlp_up;
    case Linear::mlp_down: return L.mlp_down;
    }
    return L.q;
}

Status CudaSalaOps::embed(const StepShape& s) {
    QUIRE_TRY(settle());
    pos0_ = s.pos0;
    const ModelConfig& c = e_.model_->config();
    return launch(Op::embedding, "embedding", [&] {
        return kernels::launch_embedding(e_.embed_.data, c.vocab_size, c.hidden_size, mode_.ids, s.n,
                                         static_cast<float>(c.scale_emb), buf(Act::x), e_.stream_);
    });
}

Status CudaSalaOps::rms_norm(Act in, int64_t layer, Norm norm, int64_t rows, int64_t width, Act out) {
    QUIRE_TRY(settle());
    const auto eps = static_cast<float>(e_.model_->config().rms_norm_eps);
    return launch(Op::norms, "RMSNorm", [&] {
        return kernels::launch_rms_norm(buf(in), norm_weights(layer, norm), rows, width, eps, buf(out), e_.stream_);
    });
}

Status CudaSalaOps::add_rms_norm(float scale, int64_t layer, Norm norm) {
    QUIRE_TRY(settle());
    const ModelConfig& c = e_.model_->config();
    QUIRE_TRY(launch(Op::norms, "residual + RMSNorm", [&] {
        return kernels::launch_add_rms_norm(buf(Act::x), buf(Act::a), scale, norm_weights(layer, norm), n_, c.hidden_size,
                                            static_cast<float>(c.rms_norm_eps), buf(Act::h), e_.stream_);
    }));
    // The next layer's input norm closes a segment of layers (decode_graph.h): its graph runs while
    // the next one is recorded. A segment is known by its last layer.
    if (mode_.graph && norm == Norm::input && layer > 0 && mode_.graph->closes_segment(layer)) {
        QUIRE_TRY(e_.check(mode_.graph->end_and_launch(e_.stream_, static_cast<int>(layer - 1)), "decode graph of layers"));
        QUIRE_TRY(e_.check(mode_.graph->begin(e_.stream_), "decode graph capture"));
    }
    return Status::ok();
}

Status CudaSalaOps::residual_add(float scale) {
    QUIRE_TRY(settle());
    return launch(Op::norms, "residual", [&] {
        return kernels::launch_residual_add(buf(Act::x), buf(Act::a), scale, n_ * e_.model_->config().hidden_size, e_.stream_);
    });
}

Status CudaSalaOps::settle() {
    if (swiglu_done_) return Status(ErrorCode::unsupported, "CUDA decode: the MLP's gate was fused into its projection, but SwiGLU did not follow");
    if (head_norm_layer_ >= 0) {
        const int64_t layer = head_norm_layer_;
        head_norm_layer_ = -1;
        QUIRE_TRY(head_norm_rope(layer, pos0_, 1));
    }
    if (!gate_pending_) return Status::ok();
    gate_pending_ = false;
    return launch(Op::norms, "gate", [&] { return kernels::launch_sigmoid_gate(buf(gate_.out), buf(gate_.gate), gate_.count, e_.stream_); });
}

Status CudaSalaOps::linear(int64_t layer, Linear which, Act in, Act out) {
    const CudaEngine::Matrix& m = matrix(layer, which);
    // A pending output gate on this projection's input: applied as the GEMV reads its input.
    if (gate_pending_ && in == gate_.out && gate_.count == m.cols && m.data && m.cols % 8 == 0 && m.cols <= 24576) {
        gate_pending_ = false;
        return launch(Op::gemm, "GEMV with the output gate", [&] {
            return kernels::launch_gemv_bf16_gated_input(m.data, m.rows, m.cols, buf(in), buf(gate_.gate), buf(out), e_.stream_);
        });
    }
    // The same for a 4-bit GPTQ projection (the tensor-core GEMV stages the gated input once per CTA).
    if (gate_pending_ && in == gate_.out && gate_.count == m.cols && m.quantized() &&
        kernels::gptq_gemv_mma_gated_input_applies(m.gptq, n_, &e_.gptq_scratch_)) {
        gate_pending_ = false;
        return launch(Op::gemm, "GPTQ GEMV with the output gate", [&] {
            return kernels::launch_gptq_gemv_mma_gated_input(m.gptq, buf(in), buf(gate_.gate), n_, buf(out), e_.stream_, &e_.gptq_scratch_);
        });
    }
    QUIRE_TRY(settle());
    return e_.profiler_.time(Op::gemm, [&] { return e_.gemm(buf(in), n_, m, buf(out)); });
}

Status CudaSalaOps::linears(int64_t layer, Act in, std::span<const LinearOut> outs) {
    QUIRE_TRY(settle());
    // The MLP's gate and up of one token, stored one after the other: SwiGLU in the same pass
    // (silu_mul, which the forward pass calls next, then has nothing left to do).
    if (fuse_ && outs.size() == 2 && outs[0].which == Linear::mlp_gate && outs[1].which == Linear::mlp_up && outs[0].out == Act::g) {
        const CudaEngine::Matrix &gate = matrix(layer, Linear::mlp_gate), &up = matrix(layer, Linear::mlp_up);
        if (gate.data && up.data == gate.data + gate.rows * gate.cols && up.rows == gate.rows && up.cols == gate.cols && gate.cols % 8 == 0) {
            swiglu_done_ = true;
            return launch(Op::gemm, "GEMV with SwiGLU", [&] {
                return kernels::launch_gemv_bf16_swiglu(gate.data, gate.rows, gate.cols, buf(in), buf(Act::g), e_.stream_);
            });
        }
        if (gate.quantized() && up.quantized() && kernels::gptq_gemv_mma_swiglu_applies(gate.gptq, up.gptq, n_)) {
            swiglu_done_ = true;
            return launch(Op::gemm, "GPTQ GEMV with SwiGLU", [&] {
                return kernels::launch_gptq_gemv_mma_swiglu(gate.gptq, up.gptq, buf(in), n_, buf(Act::g), e_.stream_, &e_.gptq_scratch_);
            });
        }
    }
    // One pass over weights the upload stored together (packed_weights), for the few tokens of a
    // decode step; cuBLAS per layer otherwise.
    std::vector<CudaEngine::GemmOut> group;
    for (const LinearOut& o : outs) group.push_back({&matrix(layer, o.which), buf(o.out)});
    // A sparse layer's k and v read the input its q reads: for one token they join q's pass, straight
    // into the cache rows of the token (append_kv then has only the compressed keys left to do).
    const CudaEngine::Layer& L = e_.layers_[static_cast<size_t>(layer)];
    if (fuse_ && L.sparse && in == Act::h && outs.front().which == Linear::q &&
        std::none_of(outs.begin(), outs.end(), [](const LinearOut& o) { return o.which == Linear::k || o.which == Linear::v; })) {
        const int64_t width = e_.geometry_.kv_heads * e_.geometry_.head_dim;
        LayerCache& st = cache(layer);
        group.push_back({&L.k, st.own->k.get() + (pos0_ - st.base_rows) * width});
        group.push_back({&L.v, st.own->v.get() + (pos0_ - st.base_rows) * width});
        kv_done_layer_ = layer;
    }
    return e_.profiler_.time(Op::gemm, [&] { return e_.gemm_group(buf(in), n_, group); });
}

Status CudaSalaOps::head_norm_rope(int64_t layer, int64_t pos0, int64_t n) {
    const ModelConfig& c = e_.model_->config();
    return launch(Op::norms, "q/k norm + RoPE", [&] {
        return kernels::launch_head_norm_rope(buf(Act::q), buf(Act::k), norm_weights(layer, Norm::q_head), norm_weights(layer, Norm::k_head), n,
                                              c.lightning_nh, c.lightning_head_dim, pos0, static_cast<float>(c.rope_theta),
                                              static_cast<float>(c.rms_norm_eps), c.lightning_use_rope, e_.stream_);
    });
}

Status CudaSalaOps::qk_norm_rope(const StepShape& s, int64_t layer) {
    QUIRE_TRY(settle());
    const ModelConfig& c = e_.model_->config();
    const int64_t heads = c.lightning_nh, d = c.lightning_head_dim;
    const auto theta = static_cast<float>(c.rope_theta);
    if (c.qk_norm && fuse_) {  // applied by the Lightning kernel that reads q and k next, or by settle()
        head_norm_layer_ = layer;
        return Status::ok();
    }
    if (c.qk_norm) return head_norm_rope(layer, s.pos0, s.n);  // per-head norms and RoPE in one kernel
    for (Act a : {Act::q, Act::k})
        QUIRE_TRY(launch(Op::norms, "RoPE", [&] { return kernels::launch_rope(buf(a), s.n, heads, d, s.pos0, theta, e_.stream_); }));
    return Status::ok();
}

Status CudaSalaOps::lightning(const StepShape& s, int64_t layer) {
    const ModelConfig& c = e_.model_->config();
    std::optional<kernels::LightningHeadNorm> head_norm;
    if (head_norm_layer_ == layer && s.n == 1) {
        head_norm_layer_ = -1;
        head_norm = kernels::LightningHeadNorm{norm_weights(layer, Norm::q_head), norm_weights(layer, Norm::k_head),
                                               static_cast<float>(c.rope_theta), static_cast<float>(c.rms_norm_eps), c.lightning_use_rope};
    }
    QUIRE_TRY(settle());
    const int64_t d = c.lightning_head_dim;
    float* state = seq_.lightning_[static_cast<size_t>(e_.slot_[static_cast<size_t>(layer)])].get();
    return launch(Op::lightning, head_norm ? "q/k norm + RoPE + Lightning" : "Lightning", [&] {
        return kernels::launch_lightning(buf(Act::q), buf(Act::k), buf(Act::v), s.n, s.pos0, c.lightning_nh, d, d, e_.slopes_.get(), state,
                                         buf(Act::o), e_.stream_, head_norm ? &*head_norm : nullptr);
    });
}

Status CudaSalaOps::append_kv(const StepShape& s, int64_t layer) {
    QUIRE_TRY(settle());
    const SparseGeometry& g = e_.geometry_;
    const int64_t width = g.kv_heads * g.head_dim;
    LayerCache& st = cache(layer);
    const CudaEngine::Layer& L = e_.layers_[static_cast<size_t>(layer)];
    // Straight into the cache rows of the new tokens.
    const std::vector<CudaEngine::GemmOut> kv = {{&L.k, st.own->k.get() + (s.pos0 - st.base_rows) * width},
                                                 {&L.v, st.own->v.get() + (s.pos0 - st.base_rows) * width}};
    if (kv_done_layer_ == layer) kv_done_layer_ = -1;  // computed with q (linears)
    else QUIRE_TRY(e_.profiler_.time(Op::gemm, [&] { return e_.gemm_group(buf(Act::h), s.n, kv); }));
    const int64_t n1 = g.c1_entries(s.pos0 + s.n), n2 = g.c2_entries(s.pos0 + s.n);
    QUIRE_TRY(launch(Op::kv_cache, "C1", [&] {
        return kernels::launch_compress_keys(st.k(), width, g.c1_kernel, g.c1_stride, st.n1, n1 - st.n1,
                                             st.own->c1.get() + (st.n1 - st.base_n1) * width, e_.stream_);
    }));
    QUIRE_TRY(launch(Op::kv_cache, "C2", [&] {
        return kernels::launch_compress_keys(st.k(), width, g.c2_kernel, g.c2_stride, st.n2, n2 - st.n2,
                                             st.own->c2.get() + (st.n2 - st.base_n2) * width, e_.stream_);
    }));
    st.n1 = n1;
    st.n2 = n2;
    return Status::ok();
}

Status CudaSalaOps::select_blocks(const StepShape& s, int64_t layer) {
    QUIRE_TRY(settle());
    const SparseGeometry& g = e_.geometry_;
    CudaEngine::Workspace& w = e_.ws_;
    const LayerCache& st = cache(layer);
    const int64_t qw = g.kv_heads * g.group * g.head_dim;
    const int64_t ts = s.n - s.first_sparse, p_first = s.pos0 + s.first_sparse;
    const int64_t stride = g.blocks(s.pos0 + s.n);
    QUIRE_TRY(launch(Op::stage1, "stage 1", [&] {
        return kernels::launch_stage1_blocks(buf(Act::q) + s.first_sparse * qw, st.c1(), st.c2(), ts, p_first, g.kv_heads, g.group,
                                             g.head_dim, stride, w.block_scores.get(), w.stage1_scratch.get(), w.stage1_scratch.size(),
                                             e_.stream_, {g.init_blocks, g.local_blocks, g.total_topk});  // forced blocks unscored
    }));
    // Stage 1 is done with its scratch: a long row's selection splits over CTAs in it.
    return launch(Op::selection, "block selection", [&] {
        return kernels::launch_select_blocks(w.block_scores.get(), ts, p_first, g.kv_heads, stride, g.init_blocks, g.local_blocks,
                                             g.total_topk, w.selected.get(), e_.stream_, w.stage1_scratch.get(), w.stage1_scratch.size());
    });
}

Status CudaSalaOps::sparse_attention(const StepShape& s, int64_t layer) {
    QUIRE_TRY(settle());
    const SparseGeometry& g = e_.geometry_;
    CudaEngine::Workspace& w = e_.ws_;
    const LayerCache& st = cache(layer);
    if (kernels::decode_attention_applies(s.n, g.kv_heads, g.group))
        return launch(Op::attention, "attention", [&] {
            return kernels::launch_decode_attention(buf(Act::q), st.k(), st.v(), s.n, s.pos0, g.kv_heads, g.head_dim, w.selected.get(),
                                                    s.first_sparse, g.total_topk, w.attention_scratch.get(), buf(Act::o), e_.stream_);
        });
    return launch(Op::attention, "attention", [&] {
        return kernels::launch_block_attention(buf(Act::q), st.k(), st.v(), s.n, s.pos0, g.kv_heads, g.group, g.head_dim, w.selected.get(),
                                               s.first_sparse, g.total_topk, buf(Act::o), e_.stream_);
    });
}

Status CudaSalaOps::sigmoid_gate(Act out, Act gate, int64_t count) {
    QUIRE_TRY(settle());
    if (fuse_) {  // applied by the projection that reads `out` next (linear), or by settle()
        gate_pending_ = true;
        gate_ = {out, gate, count};
        return Status::ok();
    }
    return launch(Op::norms, "gate", [&] { return kernels::launch_sigmoid_gate(buf(out), buf(gate), count, e_.stream_); });
}

Status CudaSalaOps::silu_mul(int64_t count) {
    if (swiglu_done_) {  // done by the gate/up projection
        swiglu_done_ = false;
        return Status::ok();
    }
    QUIRE_TRY(settle());
    return launch(Op::norms, "SwiGLU", [&] { return kernels::launch_silu_mul(buf(Act::g), buf(Act::up), count, buf(Act::g), e_.stream_); });
}

Status CudaSalaOps::commit(const StepShape& s) {
    QUIRE_TRY(settle());
    if (seq_.sparse_from_ < 0 && s.first_sparse < s.n) seq_.sparse_from_ = s.pos0 + s.first_sparse;
    seq_.tokens_.insert(seq_.tokens_.end(), s.ids, s.ids + s.n);
    return Status::ok();
}

Status CudaSalaOps::logits(const StepShape& s, std::vector<std::vector<float>>* /*out: read back by the engine*/) {
    QUIRE_TRY(settle());
    const ModelConfig& c = e_.model_->config();
    const int64_t H = c.hidden_size, m = static_cast<int64_t>(s.logit_rows.size());
    const CudaEngine::Matrix& head = e_.lm_head_.data ? e_.lm_head_ : e_.embed_;
    uint16_t* h = buf(Act::h);
    uint16_t* dev = e_.ws_.logits.get();
    return e_.profiler_.time(Op::logits, [&]() -> Status {
        for (int64_t i = 0; i < m; ++i)
            QUIRE_TRY(e_.check(cudaMemcpyAsync(h + i * H, buf(Act::x) + s.logit_rows[static_cast<size_t>(i)] * H, static_cast<size_t>(H) * 2,
                                               cudaMemcpyDeviceToDevice, e_.stream_), "logit rows"));
        QUIRE_TRY(e_.check(kernels::launch_rms_norm(h, e_.final_norm_.get(), m, H, static_cast<float>(c.rms_norm_eps), h, e_.stream_), "final norm"));
        QUIRE_TRY(e_.check(kernels::launch_scale(h, static_cast<float>(1.0 / c.logit_divisor()), m * H, e_.stream_), "logit scale"));
        QUIRE_TRY(e_.gemm(h, m, head, dev));
        if (!mode_.sample) return Status::ok();
        return e_.check(kernels::launch_sample_token(dev, c.vocab_size, &e_.step_in_.get()->sample, e_.sample_scratch_.get(), e_.sampled_.get(),
                                                     e_.stream_), "sampling");
    });
}

}  // namespace quire::cuda
