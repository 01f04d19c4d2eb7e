#pragma once
// The CPU reference backend: the SALA forward pass (sala_forward.h) run with the CPU operations
// (cpu_sala_ops.h), sequences whose KV pages forks share, and state files through the state codec.

#include <memory>
#include <vector>

#include "cpu/cpu_sequence.h"
#include "cpu/cpu_sala_ops.h"
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

    // Diagnostics: called (from worker threads) with every sparse-regime block selection.
    void set_selection_probe(LayerSelectionProbe probe) { probe_ = std::move(probe); }
    // Calibration (engine/quantize/): sees every linear layer's input (cpu_sala_ops.h).
    void set_linear_observer(LinearObserver observer) { observer_ = std::move(observer); }

protected:
    std::unique_ptr<StateRows> rows_to_save(const Sequence& seq) override;
    Result<std::unique_ptr<Sequence>> sequence_for_state(const StateHeader& header, std::vector<int32_t> tokens) override;
    Result<std::unique_ptr<Sequence>> sequence_for_delta(const Sequence& prefix, const StateHeader& header,
                                                         std::vector<int32_t> tokens) override;
    std::unique_ptr<StateRows> rows_to_load(Sequence& seq) override;

private:
    // One step of the model (sala_forward.h) over tokens [0, n) at positions seq.length()..;
    // `request_end` is the absolute end of the whole request (for the regime rule), `rows` the
    // chunk-local indices whose logits are appended to *logits.
    Status forward(CpuSequence& seq, const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                   std::vector<std::vector<float>>* logits);

    std::shared_ptr<const Model> model_;
    EngineOptions options_;
    ThreadPool pool_;
    CpuModelView view_;
    LayerSelectionProbe probe_;
    LinearObserver observer_;
};

}  // namespace quire::cpu
