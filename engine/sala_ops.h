#pragma once
// The operations the SALA forward pass (sala_forward.h) is written in. A backend (CPU reference,
// CUDA) implements them over buffers it owns: the activation buffers of one step, the weights, and the
// sequence it is extending. Nothing here says how an operation is computed, only what it computes
// (docs/model.md §2-§4 give the math); the forward pass decides the order.

#include <cstdint>
#include <span>
#include <vector>

#include "status.h"

namespace quire {

// Activation buffers of one forward step: `n` rows each, of the width the operation implies.
enum class Act {
    x,   // residual stream [n, hidden]
    h,   // normed input of the current block [n, hidden]
    a,   // output of a mixer or MLP, before the residual add [n, hidden]
    q,   // queries [n, heads * head_dim]
    k,   // Lightning keys [n, heads * head_dim]
    v,   // Lightning values [n, heads * head_dim]
    o,   // attention output [n, heads * head_dim]
    g,   // gate projections: output gate [n, heads * head_dim], MLP gate [n, intermediate]
    up,  // MLP up projection [n, intermediate]
};

// Linear layers of one decoder layer, y = x W^T (docs/model.md §2.4, §2.5, §2.1).
enum class Linear { q, k, v, o, out_gate, mlp_gate, mlp_up, mlp_down };

// RMSNorm weights: per layer, plus the final norm (layer ignored).
enum class Norm { input, post, q_head, k_head, o, final };

// One output of a group of linear layers that read the same input.
struct LinearOut {
    Linear which;
    Act out;
};

// Shape of one forward step: n new tokens at positions pos0 .. pos0 + n - 1; the queries from
// chunk-local index first_sparse on run InfLLM-v2 (sala_geometry.h); logits are wanted for the
// chunk-local rows in `logit_rows`.
struct StepShape {
    int64_t n = 0;
    int64_t pos0 = 0;
    int64_t first_sparse = 0;
    const int32_t* ids = nullptr;
    std::vector<int64_t> logit_rows;
};

class SalaOps {
public:
    virtual ~SalaOps() = default;

    // x = Embed[ids] * scale_emb.
    virtual Status embed(const StepShape& s) = 0;
    // out = RMSNorm(in; norm of `layer`), `rows` rows of `width` (per-head norms: rows = n * heads).
    virtual Status rms_norm(Act in, int64_t layer, Norm norm, int64_t rows, int64_t width, Act out) = 0;
    // x = x + a * scale, then h = RMSNorm(x; norm of `layer`): the residual add fused with the norm
    // that always follows it.
    virtual Status add_rms_norm(float scale, int64_t layer, Norm norm) = 0;
    // x = x + a * scale (the last layer's residual, which no norm follows).
    virtual Status residual_add(float scale) = 0;
    // out = in . W^T for the linear layer `which` of `layer`.
    virtual Status linear(int64_t layer, Linear which, Act in, Act out) = 0;
    // Several linear layers of one input (q, k, v and the gate; the MLP's gate and up): the same as
    // linear() for each, which a backend may run as one pass over weights stored together.
    virtual Status linears(int64_t layer, Act in, std::span<const LinearOut> outs) = 0;
    // Lightning's q and k (§2.5, §2.3): per-head RMSNorm (when the model has q/k norms), then RoPE
    // at positions pos0.. (when the model uses it).
    virtual Status qk_norm_rope(const StepShape& s, int64_t layer) = 0;
    // Lightning attention (§4): o = simple GLA of q, k, v, continuing and updating the layer's state.
    virtual Status lightning(const StepShape& s, int64_t layer) = 0;
    // Sparse layers (§2.4, §3): k and v of the new tokens from h appended to the layer's cache, and
    // the compressed keys C1/C2 extended to the new length.
    virtual Status append_kv(const StepShape& s, int64_t layer) = 0;
    // Stage 1 scores, pooling and top-k for the sparse queries of the step (first_sparse..n-1).
    virtual Status select_blocks(const StepShape& s, int64_t layer) = 0;
    // o = softmax attention of q over each query's blocks: all causal blocks in the dense regime,
    // the selected ones in the sparse regime.
    virtual Status sparse_attention(const StepShape& s, int64_t layer) = 0;
    // out *= sigmoid(gate), over `count` elements.
    virtual Status sigmoid_gate(Act out, Act gate, int64_t count) = 0;
    // g = silu(g) * up over `count` elements (SwiGLU).
    virtual Status silu_mul(int64_t count) = 0;
    // The step is done: the sequence now holds its tokens (and notes where the sparse regime began).
    virtual Status commit(const StepShape& s) = 0;
    // logits = lm_head(RMSNorm(x[row]; final) / logit_divisor) for the rows asked for, appended to out.
    virtual Status logits(const StepShape& s, std::vector<std::vector<float>>* out) = 0;
};

}  // namespace quire
