#pragma once
// The model's sparse-attention geometry and regime rule, in one place for both backends
// (docs/model.md §3.2, §3.8): how many compressed keys a sequence of N tokens holds, and which
// queries of a forward step run InfLLM-v2 instead of dense attention.

#include <cstdint>

#include "engine_options.h"
#include "model_config.h"

namespace quire {

// Compressed windows of `kernel` keys every `stride` keys that are complete among n keys.
inline int64_t window_entries(int64_t n, int64_t kernel, int64_t stride) { return n < kernel ? 0 : (n - kernel) / stride + 1; }

struct SparseGeometry {
    int64_t kv_heads = 0, head_dim = 0, group = 0;
    int64_t block = 64, c1_kernel = 32, c1_stride = 16, c2_kernel = 128, c2_stride = 64;
    int64_t init_blocks = 1, local_blocks = 32, total_topk = 96;
    int64_t dense_len = 8192;
    static SparseGeometry from(const ModelConfig& c);

    int64_t c1_entries(int64_t n) const { return window_entries(n, c1_kernel, c1_stride); }
    int64_t c2_entries(int64_t n) const { return window_entries(n, c2_kernel, c2_stride); }
    int64_t blocks(int64_t n) const { return (n + block - 1) / block; }
};

// The regime rule (docs/model.md §3.8, EngineOptions::regime): the index, within a step of n tokens
// at positions pos0.., of the first query that runs InfLLM-v2; n when none does. Under both rules the
// sparse queries of a step are a suffix of it. request_end: the absolute end of the whole request the
// step belongs to (a decode step is a request of one token).
int64_t first_sparse_query(const SparseGeometry& g, RegimeRule rule, int64_t pos0, int64_t n, int64_t request_end);

}  // namespace quire
