#pragma once
// Typed access to a checkpoint's tensors: bf16 matrices by pointer into the mapped shards, norm
// vectors converted to fp32 (they are tiny). Layer order and kinds follow config.mixer_types.
// A float16 checkpoint's matrices are converted to bf16 copies that the weights own (the engines
// compute in bf16 only; docs/model.md §6): they cost their size in host memory.

#include <cstdint>
#include <memory>
#include <vector>

#include "checkpoint.h"
#include "model_config.h"
#include "quant/gptq_tensors.h"

namespace quire {

struct MatrixRef {
    const uint16_t* data = nullptr;  // bf16 [rows, cols], row-major; null when quantized
    int64_t rows = 0;                // out_features
    int64_t cols = 0;                // in_features
    GptqTensors gptq;                // a GPTQ-quantized linear layer (docs/quantization.md), else empty
    bool converted = false;          // data is ModelWeights' own bf16 copy of an F16 tensor, not the mapping

    bool quantized() const { return gptq.present(); }
    // Bytes a backend holds for it: the bf16 matrix, or the GPTQ words, zeros, scales (and g_idx).
    int64_t stored_bytes() const { return quantized() ? gptq.bytes() : rows * cols * 2; }
};

struct LayerWeights {
    MixerType kind = MixerType::lightning;
    std::vector<float> input_norm, post_norm;
    MatrixRef q, k, v, o;
    MatrixRef gate;          // sparse: o_gate; lightning: z_proj (null when the config disables it)
    std::vector<float> q_norm, k_norm, o_norm;  // lightning only (empty when disabled)
    MatrixRef mlp_gate, mlp_up, mlp_down;
};

struct ModelWeights {
    MatrixRef embed;
    std::vector<LayerWeights> layers;
    std::vector<float> final_norm;
    MatrixRef lm_head;  // the embedding when tie_word_embeddings
    bool tied_embeddings = false;
    std::shared_ptr<const Checkpoint> checkpoint;  // keeps the mappings alive
    // The bf16 copies of a float16 checkpoint's matrices (MatrixRef::converted points into them);
    // shared, so that a copy of the weights stays valid.
    std::shared_ptr<const std::vector<std::vector<uint16_t>>> converted;

    // Host bytes the bf16 copies take (0 for a bfloat16 checkpoint).
    int64_t converted_bytes() const;

    // True when any linear layer is GPTQ-quantized.
    bool quantized() const;
    // Every weight matrix once: the embedding, the lm_head unless it is the embedding, and each
    // layer's linear layers (absent ones included, with rows 0).
    std::vector<const MatrixRef*> matrices() const;
};

// The checkpoint must already be validated against the config (Checkpoint::open does that).
ModelWeights bind_weights(std::shared_ptr<const Checkpoint> checkpoint, const ModelConfig& config);

// Shapes without bytes (every matrix's data is null, norms are ones): a synthetic model for
// benchmarks, whose backend draws the matrices at random where they live (the GPU).
ModelWeights synthetic_weights(const ModelConfig& config);

}  // namespace quire
