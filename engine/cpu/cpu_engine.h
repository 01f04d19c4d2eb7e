#pragma once
// The CPU reference backend: the whole SALA forward pass (docs/model.md §2-§4) on fp32 buffers with
// bf16 rounding where the official model rounds (or none in Precision::fp32), weights read in
// place from the mapped shards, work spread over a thread pool.

#include <memory>
#include <vector>

#include "cpu/cpu_sequence.h"
#include "cpu/infllm_v2.h"
#include "cpu/thread_pool.h"
#include "engine.h"

namespace quire::cpu {

class CpuEngine : public Engine {
public:
    CpuEngine(std::shared_ptr<const Model> model, const EngineOptions& options);

    const Model& model() const override { return *model_; }
    const EngineOptions& options() const override { return options_; }
    Backend backend() const override { return Backend::cpu; }
    std::unique_ptr<Sequence> new_sequence() override;
    Status prefill(Sequence& seq, const PrefillRequest& request, std::vector<std::vector<float>>* logits) override;
    Status decode(Sequence& seq, int32_t token, std::vector<float>* logits) override;
    Status save_state(const Sequence& seq, const std::string& path) override;
    Result<std::unique_ptr<Sequence>> load_state(const std::string& path, const std::vector<int32_t>* expected_tokens) override;

    // Diagnostics: called (from worker threads) with every sparse-regime block selection.
    using LayerSelectionProbe = std::function<void(int64_t layer, int64_t p, int64_t kv, const std::vector<int64_t>& blocks, float margin)>;
    void set_selection_probe(LayerSelectionProbe probe) { probe_ = std::move(probe); }

private:
    // Runs tokens [0, n) at positions seq.length().. through the model. `request_end` is the
    // absolute end of the whole request (for RegimeRule::per_request). `rows` are chunk-local
    // indices whose logits are appended to *logits.
    Status forward(CpuSequence& seq, const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                   std::vector<std::vector<float>>* logits);
    void sparse_mixer(CpuSequence& seq, const LayerWeights& w, int64_t layer, const float* h, int64_t n, int64_t pos0,
                      int64_t request_end, float* out);
    void lightning_mixer(CpuSequence& seq, const LayerWeights& w, int64_t slot, const float* h, int64_t n, int64_t pos0,
                         float* out);
    void mlp(const LayerWeights& w, const float* h, int64_t n, float* out);
    bool round() const { return options_.precision == Precision::bf16; }

    std::shared_ptr<const Model> model_;
    EngineOptions options_;
    ThreadPool pool_;
    SparseGeometry geometry_;
    std::vector<double> slopes_;
    std::vector<int64_t> slot_;  // layer -> ordinal among layers of its kind
    LayerSelectionProbe probe_;
};

}  // namespace quire::cpu
