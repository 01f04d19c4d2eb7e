#pragma once
// InfLLM-v2 block selection for sparse layers (docs/model.md §3.2-3.5), per query position p and KV
// group, with absolute positions and the "clean" causal rule (a compressed key is visible when its
// whole window lies at or before p):
//   C1[i] = mean K[16i .. 16i+31],  C2[j] = mean K[64j .. 64j+127]        (bf16-rounded means)
//   stage 1: Score[i] = sum_{h in group} exp(s q_h.C1[i] - m_h) / Z_h, with m_h, Z_h the max and
//            sum of exp over the visible C2 keys (the "compressed LSE"); rounded to bf16
//   pooling: block b scores max Score[4b-1 .. 4b+3]; block 0 and blocks qb-32..qb are forced
//   top-k:   K = topk + window/block blocks (96), ties broken towards the lower block index;
//            blocks after qb are never selected.

#include <cstdint>
#include <vector>

#include "cpu/paged_rows.h"
#include "model_config.h"
#include "sala_geometry.h"

namespace quire::cpu {

using quire::SparseGeometry;  // sala_geometry.h

// Appends the C1/C2 entries that the first `n_keys` keys complete (keys are rows of k).
void update_compressed_keys(const PagedRows& k, int64_t n_keys, const SparseGeometry& g, bool round, PagedRows& c1,
                            PagedRows& c2);

// Number of C1 / C2 entries visible to the query at position p.
int64_t visible_c1(int64_t p, const SparseGeometry& g);
int64_t visible_c2(int64_t p, const SparseGeometry& g);

// Stage 1 for one query (q: the group's heads, [group, d]) and KV head kv. scores gets one value per
// visible C1 entry (all zero when no C2 key is visible yet).
void stage1_scores(const float* q, const PagedRows& c1, const PagedRows& c2, int64_t kv, int64_t p,
                   const SparseGeometry& g, bool round, std::vector<float>& scores);

// Pooling: block b = 0 .. p/64 scores the max of Score[4b-1 .. 4b+3] that exists (-inf if none).
std::vector<float> pool_block_scores(const std::vector<float>& scores, int64_t p, const SparseGeometry& g);

// Forced blocks and top-k over pooled block scores (what the CUDA selection kernel computes).
std::vector<int64_t> select_from_block_scores(const std::vector<float>& pooled, int64_t p, const SparseGeometry& g,
                                              float* margin = nullptr);

// Pooling, forced blocks and top-k; returns the selected blocks in ascending order. margin, when
// given, receives the relative gap at the top-k cut, (lowest selected - highest rejected) / lowest
// selected score: 0 means the cut fell on a tie; +inf when nothing was rejected.
std::vector<int64_t> select_blocks(const std::vector<float>& scores, int64_t p, const SparseGeometry& g,
                                   float* margin = nullptr);

}  // namespace quire::cpu
