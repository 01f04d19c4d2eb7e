#pragma once
// Attention kernels (model-spec §3-§4). First versions written for exactness against the CPU
// engine; they are not yet tuned (no tensor cores, each query reads its own K/V blocks).

#include <cuda_runtime.h>

#include <cstdint>

namespace quire::kernels {

// Lightning (simple GLA) over tokens at positions pos0.. in chunks aligned to absolute multiples
// of 64; state [heads, dk, dv] fp32 is updated in place. q, k: [tokens, heads, dk] bf16;
// v: [tokens, heads, dv] bf16; out: [tokens, heads, dv] bf16. slopes: [heads] (decay exp(-slope)).
cudaError_t launch_lightning(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0,
                             int64_t heads, int64_t dk, int64_t dv, const double* slopes, float* state, uint16_t* out,
                             cudaStream_t stream);

// Exact softmax attention of each (query t, KV head g) over its own list of 64-token blocks
// (ascending; keys after the query's position p = pos0 + t are masked). Dense attention is the list
// 0..p/64. q: [tokens, kv_heads * group, d]; k, v: [n_keys, kv_heads, d] bf16; block lists in CSR
// form: blocks[offsets[t * kv_heads + g] .. offsets[t * kv_heads + g + 1]). out like q.
cudaError_t launch_block_attention(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0,
                                   int64_t kv_heads, int64_t group, int64_t d, const int64_t* offsets, const int32_t* blocks,
                                   uint16_t* out, cudaStream_t stream);

// InfLLM-v2 stage 1 (model-spec §3.3): for each (t, g), scores[(t * kv_heads + g) * stride + i] for
// the C1 entries visible at p = pos0 + t, bf16-rounded (stored as float); entries past them are 0.
cudaError_t launch_stage1(const uint16_t* q, const uint16_t* c1, const uint16_t* c2, int64_t tokens, int64_t pos0,
                          int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* scores, cudaStream_t stream);

// Pooling, forced blocks and top-k (model-spec §3.4-3.5) from stage-1 scores: selected[(t * kv_heads
// + g) * total_topk ..] gets the chosen blocks ascending, -1 after the last; ties go to the lower
// block. init_blocks, local_blocks, total_topk as in the config (1, 32, 96).
cudaError_t launch_select_blocks(const float* scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t total_topk, int32_t* selected,
                                 cudaStream_t stream);

}  // namespace quire::kernels
