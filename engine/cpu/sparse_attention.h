#pragma once
// Attention of the sparse (minicpm4) layers: exact softmax attention of each query over a set of
// key blocks — all blocks up to the query in the dense regime, the InfLLM-v2 selection in the
// sparse regime (docs/model.md §3.1, §3.6). GQA: query head h reads KV head h / group.

#include <cstdint>
#include <functional>

#include "cpu/cpu_sequence.h"
#include "cpu/infllm_v2.h"
#include "cpu/thread_pool.h"

namespace quire::cpu {

// Called for every sparse-regime query with its selection (tests compare selections across runs).
using SelectionProbe = std::function<void(int64_t p, int64_t kv, const std::vector<int64_t>& blocks, float margin)>;

// q: [tokens, heads, d] at positions pos0..; the layer's K/V/C1/C2 must already hold every key up
// to pos0 + tokens - 1. is_sparse(p) picks the regime per query. out: [tokens, heads, d].
void sparse_layer_attention(ThreadPool& pool, const float* q, int64_t tokens, int64_t pos0, const SparseLayerState& state,
                            const SparseGeometry& g, const std::function<bool(int64_t)>& is_sparse, bool round, float* out,
                            const SelectionProbe* probe = nullptr);

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
