#pragma once
// quantize_model: writes a GPTQ-quantized copy of a MiniCPM-SALA folder in the Hugging Face GPTQ
// layout (docs/quantization.md, "Making a quantized model"), tensor by tensor: each source tensor is
// read from its mapped shard, converted and written, and its pages released, so memory stays bounded
// by the largest layer's work, never the whole model. The output is built in a hidden staging
// folder next to DST and renamed to DST at the end; config.json is its last file.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "quantize/calibration.h"
#include "quantize/quant_format.h"

namespace quire::quantize {

struct QuantizeOptions {
    QuantSpec spec;
    bool gptq = false;
    bool desc_act = false;
    bool force = false;
    int64_t shard_bytes = int64_t{4} << 30;
    std::string producer = "quire";  // meta.quantizer in quantization_config
    int threads = 0;                 // without a calibrator: RTN's threads (0: all hardware threads)
};

// The linear layers kept in bf16 by quantization_config.dynamic, as the published MiniCPM-SALA GPTQ
// checkpoint does: the gates of the attention outputs.
const std::vector<std::string>& skipped_linear_patterns();

struct LayerReport {
    std::string name;  // the source tensor ("model.layers.3.mlp.down_proj.weight")
    int64_t out = 0, in = 0;
    double weight_error = 0;  // ||W - Q||_F / ||W||_F
    double zeroed = 0;        // the share of nonzero weights quantized to exactly 0
    double calib_loss = -1;   // ||WX - QX||^2 / ||WX||^2, or -1 without calibration
};

struct QuantizeProgress {
    int64_t layer = 0, layers = 0;  // decoder layer being written (layers: embedding etc. count as -1)
    int64_t bytes_done = 0, bytes_total = 0;  // source bytes
    double seconds = 0;
    std::string tensor;
};

struct QuantizeRun {
    std::string src, dst;
    QuantizeOptions options;
    Calibrator* calibrator = nullptr;  // required for gptq; with rtn it only adds the calibration loss
    const std::atomic<bool>* cancel = nullptr;
    std::function<void(const QuantizeProgress&)> on_progress;
    std::function<void(const LayerReport&)> on_layer;
};

// Checks that `src` is a bf16 MiniCPM-SALA folder every quantized layer of which suits the spec.
Status check_source(const std::string& src, const QuantizeOptions& options);

Result<std::vector<LayerReport>> quantize_model(const QuantizeRun& run);

}  // namespace quire::quantize
