#pragma once
// The CUDA backend of the SALA operations (sala_ops.h): bf16 activations in the engine's workspace,
// GEMMs through cuBLAS (a weight-streaming GEMV for a few tokens), the tensor-core kernels of
// kernels/ for everything else, all on the engine's stream. Computes what the CPU operations compute
// in Precision::bf16. One object runs one step of one sequence; the engine has planned and
// allocated every buffer the step touches before it is created.

#include <cstdint>
#include <vector>

#include "cuda/cuda_engine.h"
#include "cuda/cuda_sequence.h"
#include "sala_ops.h"

namespace quire::cuda {

class CudaSalaOps : public SalaOps {
public:
    // ids: the step's token ids, already on the device. sample: a one-token step draws its next
    // token on the GPU (into the engine's sampled_) after the logits. graph: the step is being
    // recorded as CUDA graphs; each segment's graph is launched when the next segment begins.
    struct Mode {
        const int32_t* ids = nullptr;
        bool sample = false;
        DecodeGraph* graph = nullptr;
    };
    CudaSalaOps(CudaEngine& engine, CudaSequence& seq, int64_t n, Mode mode)
        : e_(engine), seq_(seq), n_(n), mode_(mode), fuse_(n == 1 && engine.fuse_gates_) {}

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
    uint16_t* buf(Act a);
    const float* norm_weights(int64_t layer, Norm norm) const;
    const CudaEngine::Matrix& matrix(int64_t layer, Linear which) const;
    LayerCache& cache(int64_t layer) { return seq_.kv_[static_cast<size_t>(e_.slot_[static_cast<size_t>(layer)])]; }
    template <typename F>
    Status launch(Op op, const char* what, F&& f) {
        return e_.profiler_.time(op, [&] { return e_.check(f(), what); });
    }

    // Decode (one token) fuses the gates into the projections next to them (gemv.h): the output
    // gate waits for the projection that reads its output, SwiGLU is computed with the MLP's gate
    // and up; Lightning's q/k norm waits for the Lightning kernel. settle() applies what still waits
    // (when anything else comes first), so every operation sees what the unfused sequence would
    // have left.
    Status settle();
    Status head_norm_rope(int64_t layer, int64_t pos0, int64_t n);  // the separate kernel
    struct PendingGate {
        Act out = Act::o, gate = Act::g;
        int64_t count = 0;
    };

    CudaEngine& e_;
    CudaSequence& seq_;
    int64_t n_;
    Mode mode_;
    bool fuse_;
    bool gate_pending_ = false;
    PendingGate gate_;
    bool swiglu_done_ = false;
    // Lightning's per-head q/k norm and RoPE of one token, applied by the Lightning kernel as it
    // reads q and k (attention_ops.h), or by settle() when something else comes first.
    int64_t head_norm_layer_ = -1;  // the layer whose norm waits, -1: none (at the step's position)
    int64_t pos0_ = 0;              // the step's first position (embed); one CudaSalaOps per step
    int64_t kv_done_layer_ = -1;    // the sparse layer whose k and v joined q's GEMV (linears)
};

}  // namespace quire::cuda
