#pragma once
// Options that change what the engine computes (not just how fast).

#include <cstdint>
#include <string>

namespace quire {

// bf16: round activations to bf16 wherever the official model does (docs/model.md §2), the default.
// fp32: keep every intermediate in fp32 (weights are still the bf16 values). Exact invariance tests
// (chunked = one-shot, decode = prefill) run in this mode (docs/model.md §12).
enum class Precision { bf16, fp32 };

// Which sparse-layer queries use InfLLM-v2 instead of dense attention (docs/model.md §3.8, ⚠).
// per_query (default): the query at absolute position p is sparse iff p + 1 >= dense_len, i.e. the
//   regime a token-by-token decode would use. Independent of how a prompt is split into chunks, so
//   chunked prefill, one-shot prefill and decode agree.
// per_request: like HF's one-shot prefill: every query of one prefill request is sparse iff the
//   request ends at or beyond dense_len (however the request is chunked internally). Decode steps
//   are one-token requests, so they behave as per_query.
enum class RegimeRule { per_query, per_request };

struct EngineOptions {
    Precision precision = Precision::bf16;
    RegimeRule regime = RegimeRule::per_query;
    int threads = 0;  // 0: all hardware threads
    int gpu = 0;      // CUDA backend: which device (cudaGetDeviceCount order, as nvidia-smi lists them)
    // CUDA backend: the most GPU memory the engine may plan for (weights, state, workspace and the
    // CUDA context, gpu_memory_plan.h); 0: no budget beyond what the GPU has free.
    int64_t gpu_memory_budget_bytes = 0;
};

const char* precision_name(Precision p);
const char* regime_rule_name(RegimeRule r);
bool parse_precision(const std::string& s, Precision& out);
bool parse_regime_rule(const std::string& s, RegimeRule& out);

}  // namespace quire
