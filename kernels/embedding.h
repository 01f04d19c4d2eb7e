#pragma once
// Embedding lookup: out[t, :] = bf16(table[ids[t], :] * scale)   (docs/model.md §2.1, scale_emb).

#include <cuda_runtime.h>

#include <cstdint>

namespace quire::kernels {

// table: [vocab, hidden] bf16; ids: [n_tokens]; out: [n_tokens, hidden] bf16. Ids outside
// [0, vocab) produce a zero row (the engine validates ids before it launches).
cudaError_t launch_embedding(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                             int64_t n_tokens, float scale, uint16_t* out, cudaStream_t stream);

}  // namespace quire::kernels
