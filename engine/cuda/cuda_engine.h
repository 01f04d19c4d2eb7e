#pragma once
// The CUDA backend: weights uploaded once (or drawn at random on the GPU for a synthetic model),
// GEMMs through cuBLAS in bf16 with fp32 accumulation, the tensor-core kernels of kernels/ for
// attention, stage 1, selection and Lightning. Computes what the CPU engine's bf16 mode computes.
// One persistent workspace grows with the largest chunk and context seen; block selections stay on
// the device. Sequences (cuda_sequence.h) share their cache rows with the sequence they were forked from.

#include <cublas_v2.h>

#include <memory>

#include "cuda/decode_graph.h"
#include "cuda/device_array.h"
#include "cuda/op_profiler.h"
#include "cuda/pinned_staging.h"
#include "engine.h"
#include "gptq_gemv.h"
#include "gptq_view.h"
#include "sala_geometry.h"
#include "sala_ops.h"
#include "sampling.h"

namespace quire::cuda {

class CudaSequence;

class CudaEngine : public Engine {
public:
    static Result<std::unique_ptr<Engine>> create(std::shared_ptr<const Model> model, const EngineOptions& options);
    ~CudaEngine() override;

    const Model& model() const override { return *model_; }
    const EngineOptions& options() const override { return options_; }
    Backend backend() const override { return Backend::cuda; }
    std::unique_ptr<Sequence> new_sequence() override;
    Status prefill(Sequence& seq, const PrefillRequest& request, std::vector<std::vector<float>>* logits) override;
    Status decode(Sequence& seq, int32_t token, std::vector<float>* logits) override;
    // Draws on the GPU (kernels/sampling.h) unless the sampler has a repetition penalty, which
    // needs the history on the host: then as Engine::decode_and_sample.
    Result<int32_t> decode_and_sample(Sequence& seq, int32_t token, Sampler& sampler) override;

    // Decode steps as CUDA graphs (decode_graph.h): on unless QUIRE_CUDA_GRAPH=0 or profiling.
    void set_decode_graphs(bool on) { graph_.set_enabled(on); }
    bool decode_graphs() const { return graph_.enabled(); }
    // Graph nodes (kernels and copies) the last decode step launched; 0 when it ran without a graph.
    int64_t last_step_nodes() const { return last_step_nodes_; }
    // Graphs (segments of layers, decode_graph.h) the last decode step launched.
    int last_step_segments() const { return last_step_segments_; }
    int64_t graph_instantiations() const { return graph_.instantiations(); }
    int64_t graph_refused_updates() const { return graph_.refused_updates(); }
    // Host recording against GPU time of the graph steps (QUIRE_CUDA_GRAPH_TIMING=1).
    const DecodeGraph::Timing* decode_graph_timing() const { return graph_.timing_enabled() ? &graph_.timing() : nullptr; }
    void reset_decode_graph_timing() { graph_.reset_timing(); }
    // Decode fuses the output gates and SwiGLU into the GEMVs next to them (gemv.h): on unless
    // QUIRE_CUDA_FUSE=0. The results are the same bit for bit; only the kernel count changes.
    void set_fused_gates(bool on) { fuse_gates_ = on; }
    // Whether a 4-bit checkpoint's bf16 layers run on the side stream (tests compare both ways).
    void set_side_stream(bool on) { side_on_ = on; }
    // A 4-bit checkpoint's bf16 layer read in the 4-bit GEMV's launch (QUIRE_CUDA_JOIN_BF16=0: off).
    void set_join_bf16(bool on) { join_bf16_ = on; }
    int64_t joined_bf16_launches() const { return joined_bf16_launches_; }  // since the engine started
    bool has_side_stream() const { return side_stream_ != nullptr; }

    // Device bytes a sequence of `tokens` needs beside the weights, and the workspace of a chunk.
    int64_t state_bytes(int64_t tokens) const;
    int64_t workspace_bytes(int64_t chunk, int64_t context) const;
    // GPU time per operation summed over forward passes (QUIRE_CUDA_PROFILE=1; zeros otherwise).
    std::vector<std::pair<std::string, double>> profile() const { return profiler_.report(); }
    void reset_profile() { profiler_.reset(); }
    // quire-bench --ablate: one-token steps leave out the operations of these categories (bit i: Op i).
    void set_skipped_ops(uint32_t mask) { profiler_.set_skipped(mask); }

protected:
    std::unique_ptr<StateRows> rows_to_save(const Sequence& seq) override;
    Result<std::unique_ptr<Sequence>> sequence_for_state(const StateHeader& header, std::vector<int32_t> tokens) override;
    Result<std::unique_ptr<Sequence>> sequence_for_delta(const Sequence& prefix, const StateHeader& header,
                                                         std::vector<int32_t> tokens) override;
    std::unique_ptr<StateRows> rows_to_load(Sequence& seq) override;

private:
    friend class CudaSalaOps;    // the operations run on the engine's weights, workspace and stream
    friend class CudaStateRows;  // state rows go through the engine's pinned staging
    CudaEngine() = default;
    // A weight matrix on the GPU: a view into storage the engine owns (weights_), where matrices that
    // read the same input lie one after another (packed_weights in the upload).
    struct Matrix {
        const uint16_t* data = nullptr;  // bf16 [rows, cols]; null when the configuration has no such layer or it is GPTQ
        int64_t rows = 0, cols = 0;
        kernels::GptqView gptq;          // a GPTQ layer's packed words on the device (docs/quantization.md)
        bool quantized() const { return gptq.qweight != nullptr; }
    };
    struct Layer {
        bool sparse = false;
        DeviceArray<float> input_norm, post_norm, q_norm, k_norm, o_norm;
        Matrix q, k, v, o, gate, mlp_gate, mlp_up, mlp_down;
    };
    struct GemmOut {
        const Matrix* w;
        uint16_t* y;
    };
    // Buffers of one forward pass, sized for `tokens` tokens and contexts up to `blocks` * 64.
    struct Workspace {
        int64_t tokens = 0, blocks = 0;
        DeviceArray<uint16_t> x, h, a, b0, b1, b2, b3, b4, logits;
        DeviceArray<int32_t> ids, selected;
        DeviceArray<float> block_scores, stage1_scratch, attention_scratch;  // scratch: the decode paths
        int64_t bytes() const;
    };
    Status upload();
    Status allocate_gptq(Matrix& m, const GptqTensors& t);
    Status fill_gptq(const Matrix& m, const GptqTensors& t, uint64_t seed);
    Status ensure_workspace(int64_t tokens, int64_t context);
    // OK when `more` bytes fit the GPU memory budget beside what the process holds (always, without one).
    Status within_budget(int64_t more, int64_t context) const;
    int64_t workspace_growth(int64_t tokens, int64_t context) const;  // bytes to add; 0 when it fits
    Status gemm(const uint16_t* x, int64_t tokens, const Matrix& w, uint16_t* y);
    // y_i = x . W_i^T for each output; one GEMV over all of them when they are few tokens and the
    // matrices lie one after another.
    Status gemm_group(const uint16_t* x, int64_t tokens, const std::vector<GemmOut>& outs);
    // True where the bf16 outputs `outs` take one GEMV pass (few tokens, matrices one after another).
    static bool one_gemv_pass(const std::vector<GemmOut>& outs, int64_t tokens);
    Status gemv_pass(const uint16_t* x, int64_t tokens, const std::vector<GemmOut>& outs, cudaStream_t stream);
    // Plans one step (state rows, workspace, scratch: everything counted and allocated up front),
    // then runs the model (sala_forward.h) with the CUDA operations.
    // With `sample`, a one-token step draws the next token on the GPU into *sampled instead of
    // returning logits.
    Status forward(Sequence& seq, const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                   std::vector<std::vector<float>>* logits, const kernels::SampleArgs* sample = nullptr, int32_t* sampled = nullptr);
    // The step's launches, recorded as CUDA graphs and launched segment by segment (decode_graph.h);
    // falls back to run_eager when recording fails before anything was launched.
    Status run_graph(CudaSequence& seq, const StepShape& step, bool sample, std::vector<std::vector<float>>* logits);
    Status run_eager(CudaSequence& seq, const StepShape& step, bool sample, std::vector<std::vector<float>>* logits);
    Status read_logits(int64_t rows, std::vector<std::vector<float>>* out);
    Status plan_step(CudaSequence& seq, int64_t n, int64_t first_sparse, int64_t logit_rows);
    Status check(cudaError_t e, const char* what) const;

    std::shared_ptr<const Model> model_;
    EngineOptions options_;
    SparseGeometry geometry_;
    cublasHandle_t blas_ = nullptr;
    cudaStream_t stream_ = nullptr;  // every launch and cuBLAS call of the engine
    // Decode with a 4-bit checkpoint: the bf16 layers that share an input with 4-bit ones (o_gate,
    // z_proj) run on this stream beside the 4-bit GEMV, forked from and joined back to stream_.
    cudaStream_t side_stream_ = nullptr;
    cudaEvent_t fork_ = nullptr, join_ = nullptr;
    std::vector<DeviceArray<uint16_t>> weights_;  // every weight matrix lives in one of these
    DeviceArray<uint16_t> dequant_;  // prefill: the GPTQ layer being multiplied, as bf16 for cuBLAS
    // Decode: the 4-bit GEMV's room to split small layers' inputs over more CTAs (gptq_gemv.h).
    DeviceArray<float> gptq_partials_;
    DeviceArray<uint32_t> gptq_tickets_;
    kernels::GptqGemvScratch gptq_scratch_;
    Matrix embed_, lm_head_;
    DeviceArray<float> final_norm_;
    DeviceArray<double> slopes_;
    std::vector<Layer> layers_;
    std::vector<int64_t> slot_;
    Workspace ws_;
    OpProfiler profiler_;
    PinnedStaging staging_;  // state save and load
    // A decode step's inputs, in pinned memory so that copying them is legal in a graph and cheap.
    struct StepInputs {
        int32_t token = 0;
        int32_t reserved = 0;
        kernels::SampleArgs sample;
    };
    struct StepHost {
        StepInputs in;
        int32_t sampled = 0;
    };
    StepHost* step_host_ = nullptr;               // cudaMallocHost
    DeviceArray<StepInputs> step_in_;             // the device copy the step's kernels read
    DeviceArray<int32_t> sampled_;                // the token drawn on the GPU
    DeviceArray<uint32_t> sample_scratch_;        // kernels::kSampleScratchWords
    DeviceArray<uint8_t> blas_workspace_;         // cuBLAS's, so that it never allocates inside a capture
    DecodeGraph graph_;
    bool graph_checked_[2] = {false, false};      // a whole step recorded once per regime (dense, sparse)
    int64_t last_step_nodes_ = 0;
    int last_step_segments_ = 0;
    bool fuse_gates_ = true;
    bool side_on_ = false;  // QUIRE_CUDA_SIDE_STREAM=1
    bool join_bf16_ = true;
    int64_t joined_bf16_launches_ = 0;
};

}  // namespace quire::cuda
