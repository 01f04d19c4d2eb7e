#pragma once
// The GPU memory a model needs for a context, backend-neutral (no CUDA): weights in their precision,
// the sequence state, the workspace of a chunked read, and the CUDA context's own overhead; and the
// longest context that fits a budget (`--gpu-memory GiB`). The state and workspace counts replicate
// what the CUDA engine allocates (engine/cuda/cuda_engine.cpp: upload, ensure_workspace, plan_step;
// engine/cuda/cuda_sequence.cpp: reserve, allocate_own), so a refusal up front can quote them.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model_config.h"
#include "status.h"

namespace quire {

// How the linear layers of a checkpoint are stored. Embedding, norms and lm_head always stay as the
// file has them (bf16, norms uploaded as fp32).
struct WeightFormat {
    int bits = 16;             // 16: bf16; 4 or 8: GPTQ
    int64_t group_size = 128;  // GPTQ rows of the input per scale/zero group; -1: one group per column
    // Modules (tensor names without ".weight") left in bf16, as regular expressions (GPTQModel's
    // `dynamic` "-:" rules); the community SALA checkpoints skip every o_gate and z_proj.
    std::vector<std::string> skip;
    // A folder's own quantization_config (its `dynamic` rules decide each module, overrides included);
    // absent for bf16 and for the hypothetical formats of gptq().
    std::optional<QuantConfig> rules;

    static WeightFormat bf16() { return {}; }
    static WeightFormat gptq(int bits, int64_t group_size, std::vector<std::string> skip) {
        WeightFormat f;
        f.bits = bits;
        f.group_size = group_size;
        f.skip = std::move(skip);
        return f;
    }
    // What the SALA GPTQ checkpoints skip (issue 13: o_gate and z_proj stay bf16).
    static std::vector<std::string> sala_gate_skips();
    bool quantized() const { return bits < 16; }
    std::string name() const;  // "bf16", "GPTQ INT4 (group 128)"
};

// The format a model folder's config.json declares: bf16 without `quantization_config`, otherwise its
// bits, group_size and `dynamic` skips. An unusable quantization_config is an error naming the field.
Result<WeightFormat> weight_format_of_config(const std::string& config_json_text);

// The format of a loaded configuration (its parsed quantization_config, when it has one), and of a
// parsed quantization_config.
WeightFormat weight_format_of(const ModelConfig& config);
WeightFormat weight_format_of(const QuantConfig& quantization);

// Bytes of one GPTQ linear layer of `out` × `in` weights (qweight, qzeros, fp16 scales, g_idx).
int64_t gptq_matrix_bytes(int64_t out, int64_t in, int bits, int64_t group_size);
// Bytes of the weights on the GPU as the CUDA engine holds them: matrices in `format`, norm vectors
// as fp32, the Lightning ALiBi slopes as fp64.
int64_t gpu_weight_bytes(const ModelConfig& config, const WeightFormat& format);
// Elements of the largest quantized matrix (its bf16 copy is prefill's dequantization scratch); 0 if none.
int64_t largest_quantized_matrix(const ModelConfig& config, const WeightFormat& format);
// Output columns the widest decode GEMV launch can have (up to 4 layers that share an input), which
// sizes the 4-bit GEMV's split scratch (kernels/gptq_gemv_mma.h: 4 parts x 8 tokens of fp32 sums
// per column, a 4-byte ticket per 32 columns).
int64_t gptq_gemv_scratch_columns(const ModelConfig& config);
constexpr int64_t kGptqGemvPartialFloatsPerColumn = 32;
// Bytes of that scratch; 0 for a model without quantized layers.
int64_t gptq_gemv_scratch_bytes(const ModelConfig& config, const WeightFormat& format);
// The decode attention's shares per (query, KV head) (kernels/attention_ops.h; a static_assert in
// cuda_engine.cpp keeps the two equal).
constexpr int64_t kDecodeAttentionSplitsPlanned = 96;

// The sequence state of a read of `tokens` tokens (one reservation of exactly that length, rows
// rounded up to 64): per sparse layer K and V rows and the C1/C2 compressed keys in bf16, per
// Lightning layer its fp32 state.
int64_t state_capacity(int64_t tokens);
int64_t sparse_layer_state_bytes(const ModelConfig& config, int64_t capacity);
int64_t lightning_state_bytes(const ModelConfig& config);
int64_t gpu_state_bytes(const ModelConfig& config, int64_t tokens);

// The workspace of chunks of `chunk` tokens reading up to `context` tokens: activations, token ids,
// block scores (the engine grows their block count in steps of 1,024, so at most 1,023 blocks past
// the context) and block selections, one logits row, the decode kernels' scratch; for a quantized
// model `dequant` is prefill's bf16 copy of one layer plus the 4-bit GEMV's split scratch.
struct WorkspaceBytes {
    int64_t activations = 0, selection = 0, logits = 0, decode_scratch = 0, dequant = 0, cublas = 0;
    int64_t total() const { return activations + selection + logits + decode_scratch + dequant + cublas; }
};
WorkspaceBytes gpu_workspace_bytes(const ModelConfig& config, const WeightFormat& format, int64_t chunk, int64_t context);

// The decode step's small buffers beside the scratch the plan counts one by one.
constexpr int64_t kDecodeBuffersBytes = 64LL << 20;
// cuBLAS's default workspace on Hopper (smaller on older cards; the larger one is planned).
constexpr int64_t kCublasWorkspaceBytes = 32LL << 20;
// The CUDA context, cuBLAS handle and module images, beside what the engine allocates: 600 MiB. On
// the H100 of docs/benchmarks.md, loading the 9B model showed 18.23 GiB used for 17.65 GiB of
// weights (0.58 GiB).
constexpr int64_t kCudaContextBytes = 600LL << 20;

struct GpuMemoryPlan {
    int64_t context = 0, chunk = 0;
    int64_t weights = 0, state = 0, context_overhead = kCudaContextBytes;
    WorkspaceBytes workspace;
    int64_t total() const { return weights + state + workspace.total() + context_overhead; }
};

// The default chunk of `quire ask` (8,192 tokens).
constexpr int64_t kDefaultPlanChunk = 8192;

GpuMemoryPlan plan_gpu_memory(const ModelConfig& config, const WeightFormat& format, int64_t context, int64_t chunk = kDefaultPlanChunk);
// The longest context (a multiple of 64 tokens, at most `limit`) whose plan fits `budget_bytes`; 0
// when not even 64 tokens do (the weights alone may be too large).
int64_t longest_context_within(const ModelConfig& config, const WeightFormat& format, int64_t budget_bytes, int64_t chunk = kDefaultPlanChunk,
                               int64_t limit = 1LL << 24);
// "weights 17.65 GiB + state 8.36 GiB + workspace 2.48 GiB + CUDA context 0.59 GiB = 29.08 GiB"
std::string describe_plan(const GpuMemoryPlan& plan);

// "24", "23.5": GiB as the user types it for --gpu-memory and in Settings. Refuses what is not a
// number, not positive, or beyond any GPU (more than 65,536 GiB), naming the problem.
Result<int64_t> parse_gpu_memory_gib(const std::string& text);
std::string format_gib(int64_t bytes);  // "29.04 GiB"

}  // namespace quire
