#pragma once
// The CPU backend of the SALA operations (sala_ops.h): fp32 buffers, bf16 weights read in place from
// the mapped shards, bf16 rounding where the official model rounds (Precision::bf16) or none
// (Precision::fp32), work spread over a thread pool. One object runs the steps of one sequence.

#include <array>
#include <functional>
#include <vector>

#include "cpu/cpu_sequence.h"
#include "cpu/sparse_attention.h"
#include "cpu/thread_pool.h"
#include "model.h"
#include "sala_ops.h"

namespace quire::cpu {

// Called with every sparse-regime block selection (tests compare selections across runs).
using LayerSelectionProbe = std::function<void(int64_t layer, int64_t p, int64_t kv, const std::vector<int64_t>& blocks, float margin)>;
// Called with every linear layer's input rows [rows, cols] before the product (GPTQ calibration,
// engine/quantize/); a non-ok Status ends the step with that Status.
using LinearObserver = std::function<Status(int64_t layer, Linear which, const float* x, int64_t rows, int64_t cols)>;

// What the ops read besides the sequence: fixed for the engine's lifetime.
struct CpuModelView {
    const Model* model = nullptr;
    ThreadPool* pool = nullptr;
    SparseGeometry geometry;
    std::vector<double> slopes;  // Lightning decay per head
    std::vector<int64_t> slot;   // layer -> ordinal among the layers of its kind
    bool round = true;
    const LayerSelectionProbe* probe = nullptr;
    const LinearObserver* observer = nullptr;
};

class CpuSalaOps : public SalaOps {
public:
    CpuSalaOps(const CpuModelView& view, CpuSequence& seq, int64_t n);

    Status embed(const StepShape& s) override;
    Status rms_norm(Act in, int64_t layer, Norm norm, int64_t rows, int64_t width, Act out) override;
    Status add_rms_norm(float scale, int64_t layer, Norm norm) override;
    Status residual_add(float scale) override;
    Status linear(int64_t layer, Linear which, Act in, Act out) override;
    Status linears(int64_t layer, Act in, std::span<const LinearOut> outs) override;
    Status qk_norm_rope(const StepShape& s, int64_t layer) override;
    Status lightning(const StepShape& s, int64_t layer) override;
    Status append_kv(const StepShape& s, int64_t layer) override;
    Status select_blocks(const StepShape& s, int64_t layer) override;
    Status sparse_attention(const StepShape& s, int64_t layer) override;
    Status sigmoid_gate(Act out, Act gate, int64_t count) override;
    Status silu_mul(int64_t count) override;
    Status commit(const StepShape& s) override;
    Status logits(const StepShape& s, std::vector<std::vector<float>>* out) override;

private:
    float* buf(Act a) { return bufs_[static_cast<size_t>(a)].data(); }
    const std::vector<float>& norm_weights(int64_t layer, Norm norm) const;
    const MatrixRef& matrix(int64_t layer, Linear which) const;
    SparseLayerState& sparse_state(int64_t layer) { return seq_.sparse_[static_cast<size_t>(view_.slot[static_cast<size_t>(layer)])]; }

    const CpuModelView& view_;
    const ModelConfig& config_;
    CpuSequence& seq_;
    int64_t n_;
    std::array<std::vector<float>, 9> bufs_;
    std::vector<std::vector<int64_t>> selected_;  // the current sparse layer's selections
};

}  // namespace quire::cpu
