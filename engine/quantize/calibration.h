#pragma once
// Calibration for GPTQ: the inputs every linear layer of one decoder layer sees when the model reads
// the calibration tokens, reduced to their Gram matrices X^T X (gptq.h). The CPU engine runs the
// source model (bf16 rounding as the official model) with an observer on its linear op
// (cpu_sala_ops.h); one forward pass per decoder layer, stopped right after that layer's MLP, so
// only one layer's matrices are ever held (down_proj's alone is intermediate^2 floats).
//
// The inputs come from the original (unquantized) model, not from the already-quantized earlier
// layers (GPTQ's sequential mode): the engine reads the source weights in place, unchanged.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu_engine.h"
#include "model.h"

namespace quire::quantize {

// Which input a linear layer reads: the layers that share an input share its matrix.
enum class LinearInput { mixer, mixer_out, mlp, mlp_down };
LinearInput input_of(Linear which);

struct LayerHessians {
    std::map<LinearInput, std::vector<float>> h;  // [width, width] each
    std::map<LinearInput, std::vector<float>> x;  // the input rows themselves [rows, width] (for the loss)
    std::map<LinearInput, int64_t> width;
    int64_t rows = 0;  // calibration tokens seen
    const float* of(Linear which) const;
    const float* rows_of(Linear which) const;
};

class Calibrator {
public:
    // Loads the model folder for the CPU engine; the tokens must be inside its vocabulary.
    static Result<std::unique_ptr<Calibrator>> create(const std::string& model_dir, int threads);

    const Model& model() const { return *model_; }
    cpu::ThreadPool& pool() { return pool_; }
    // The calibration samples (set once, before layer()): each is read as its own sequence.
    void set_samples(std::vector<std::vector<int32_t>> samples);
    int64_t token_count() const { return tokens_; }
    int64_t sample_count() const { return static_cast<int64_t>(samples_.size()); }

    // X^T X of every input of layer `layer`'s linear layers.
    Result<LayerHessians> layer(int64_t layer, const std::atomic<bool>* cancel);

private:
    Calibrator(std::shared_ptr<const Model> model, int threads);
    // The weights' pages the forward pass touched leave this process's resident set (they stay in
    // the page cache): resident memory stays bounded by one layer's work, not the whole model.
    void release_weight_pages() const;

    std::shared_ptr<const Model> model_;
    cpu::CpuEngine engine_;
    cpu::ThreadPool pool_;
    std::vector<std::vector<int32_t>> samples_;
    int64_t tokens_ = 0;
};

// Up to `wanted` tokens of `tokens` for calibration: all of them when there are no more, else
// windows of `window` tokens spread evenly from the start to the end (a library's context is many
// sources; its first tokens alone would be the system prompt and the first source's opening).
std::vector<std::vector<int32_t>> calibration_windows(const std::vector<int32_t>& tokens, int64_t wanted, int64_t window);

// Drops the pages of [data, data + bytes) of a read-only file mapping from the resident set.
void release_mapped_pages(const void* data, int64_t bytes);

}  // namespace quire::quantize
