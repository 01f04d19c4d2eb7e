#pragma once
// Attention of the sparse (minicpm4) layers: exact softmax attention of each query over a set of
// key blocks — all blocks up to the query in the dense regime, the InfLLM-v2 selection in the
// sparse regime (docs/model.md §3.1, §3.6). GQA: query head h reads KV head h / group.

#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/cpu_sequence.h"
#include "cpu/infllm_v2.h"
#include "cpu/thread_pool.h"

namespace quire::cpu {

// Called for every sparse-regime query with its selection (tests compare selections across runs).
using SelectionProbe = std::function<void(int64_t p, int64_t kv, const std::vector<int64_t>& blocks, float margin)>;

// Stage 1, pooling and top-k (docs/model.md §3.3-§3.5) for the queries first_sparse..tokens-1 of a
// step (q: [tokens, heads, d] at positions pos0..; the layer's C1/C2 must cover every key up to the
// last query). Returns the selected blocks (ascending) of query t and KV head kv at
// [(t - first_sparse) * kv_heads + kv].
std::vector<std::vector<int64_t>> select_sparse_blocks(ThreadPool& pool, const float* q, int64_t tokens, int64_t pos0,
                                                       int64_t first_sparse, const SparseLayerState& state, const SparseGeometry& g,
                                                       bool round, const SelectionProbe* probe = nullptr);

// Attention of the step's queries: queries before first_sparse see every causal block (dense regime),
// the others their selected blocks. The layer's K/V must hold every key up to the last query.
// out: [tokens, heads, d].
void sparse_layer_attention(ThreadPool& pool, const float* q, int64_t tokens, int64_t pos0, const SparseLayerState& state,
                            const SparseGeometry& g, int64_t first_sparse, const std::vector<std::vector<int64_t>>& selected,
                            bool round, float* out);

// One query of a tile: its head group's q, its position and its selected blocks (ascending).
struct TileQuery {
    const float* q_group = nullptr;  // [group, d]
    int64_t p = 0;
    std::vector<int64_t> blocks;
    float* out_group = nullptr;      // [group, d]
};

// Exact softmax attention for several queries of one KV head that share K/V reads: the union of
// their blocks is walked once in ascending order and each query folds in only its own blocks with
// an online softmax (keys t <= p), so every query's result is independent of its tile mates.
void attend_tile(std::vector<TileQuery>& queries, const SparseLayerState& state, int64_t kv, const SparseGeometry& g,
                 bool round);

}  // namespace quire::cpu
