#pragma once
// Attention kernels (docs/model.md §3-§4) on tensor cores (mma.sync, bf16 in, fp32 accumulation).
// Shapes: head_dim (d) 64 or 128; GQA group sizes that divide 16 (the group's heads are the rows
// of one MMA tile). Every launcher returns cudaErrorInvalidValue for shapes it does not support.

#include <cuda_runtime.h>

#include <cstdint>

#include "row_source.h"

namespace quire::kernels {

// Lightning (simple GLA) over tokens at positions pos0.. in chunks aligned to absolute multiples
// of 64; state [heads, dk, dv] fp32 is updated in place. q, k: [tokens, heads, dk] bf16;
// v: [tokens, heads, dv] bf16; out: [tokens, heads, dv] bf16. slopes: [heads] (decay exp(-slope)).
// dk == dv, 64 or 128.
// head_norm (one token only): q and k as they are before launch_head_norm_rope (norm_ops.h), which
// this launch then applies itself as it reads them (the same bits; q and k are left as they were).
struct LightningHeadNorm {
    const float* q_weight = nullptr;
    const float* k_weight = nullptr;
    float theta = 10000.0f;
    float eps = 1e-6f;
    bool rope = true;
};
cudaError_t launch_lightning(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0,
                             int64_t heads, int64_t dk, int64_t dv, const double* slopes, float* state, uint16_t* out,
                             cudaStream_t stream, const LightningHeadNorm* head_norm = nullptr);

// Exact softmax attention of each (query t, KV head g) over 64-token blocks (keys after the query's
// position p = pos0 + t masked). Queries t < first_sparse are dense (blocks 0..p/64); query
// t >= first_sparse uses the ascending list selected[((t - first_sparse) * kv_heads + g) * topk ..]
// (-1 after its last block), as launch_select_blocks writes it. q: [tokens, kv_heads * group, d];
// k, v: [pos0 + tokens, kv_heads, d] bf16. out like q. Groups of 16 run one warp per query
// (warp_attention.cu), smaller groups a CTA per 4 warps' union of blocks (block_attention.cu).
cudaError_t launch_block_attention(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0,
                                   int64_t kv_heads, int64_t group, int64_t d, const int32_t* selected, int64_t first_sparse,
                                   int64_t topk, uint16_t* out, cudaStream_t stream);

// Scratch (floats) launch_stage1_blocks needs for this call: nonzero for a few queries of group 16,
// which take the split (decode) path, 0 otherwise.
int64_t stage1_scratch_floats(int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t group);

// The same attention for a few queries of group 16 (decode), split over the blocks: for
// decode_attention_applies() shapes, with scratch of decode_attention_scratch_floats() floats
// (kDecodeAttentionSplits shares of [16, d] + 32 floats per query and KV head).
inline constexpr int kDecodeAttentionSplits = 96;
bool decode_attention_applies(int64_t tokens, int64_t kv_heads, int64_t group);
int64_t decode_attention_scratch_floats(int64_t tokens, int64_t kv_heads, int64_t group, int64_t d);
cudaError_t launch_decode_attention(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0, int64_t kv_heads,
                                    int64_t d, const int32_t* selected, int64_t first_sparse, int64_t topk, float* scratch, uint16_t* out,
                                    cudaStream_t stream);

// The blocks the selection forces (docs/model.md §3.4): the first init_blocks, the local_blocks
// before the query's own block and that block, and every block while there are at most topk. Stage
// 1 may skip scoring them (their block scores are then left unwritten or arbitrary); local_blocks
// < 0 (the default) scores every block.
struct Stage1Forced {
    int64_t init_blocks = 0;
    int64_t local_blocks = -1;
    int64_t topk = 0;
};

// InfLLM-v2 stage 1 and pooling (docs/model.md §3.3-3.4, the clean visibility rule): for each (t, g),
// block_scores[(t * kv_heads + g) * stride + b] for b = 0 .. (pos0 + t) / 64 = max over the C1
// entries [4b-1, 4b+3] visible at p of the bf16-rounded group-summed probabilities (-inf, or 0,
// where none is visible: such a block is always forced). Blocks the selection forces matter not (see Stage1Forced). stride >= the
// number of blocks of the last query. c1, c2: [n, kv_heads, d] with n >= the entries visible at
// pos0 + tokens - 1.
cudaError_t launch_stage1_blocks(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0,
                                 int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* block_scores,
                                 float* scratch, int64_t scratch_floats, cudaStream_t stream, const Stage1Forced& forced = {});

// Forced blocks and top-k (docs/model.md §3.4-3.5) from pooled block scores: selected[(t * kv_heads
// + g) * total_topk ..] gets the chosen blocks ascending, -1 after the last; ties go to the lower
// block. init_blocks, local_blocks, total_topk as in the config (1, 32, 96). With scratch of
// select_decode_scratch_floats() floats, a few long rows (a decode step past 256K tokens) are split
// over many CTAs (same result); without, each takes one CTA.
cudaError_t launch_select_blocks(const float* block_scores, int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                 int64_t init_blocks, int64_t local_blocks, int64_t total_topk, int32_t* selected,
                                 cudaStream_t stream, float* scratch = nullptr, int64_t scratch_floats = 0);
int64_t select_decode_scratch_floats(int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t topk);

}  // namespace quire::kernels
