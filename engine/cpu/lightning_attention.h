#pragma once
// Lightning attention = simple gated linear attention with a fixed per-head decay (docs/model.md §4).
//   S_h <- gamma_h * S_h + k_t (outer) v_t ;   o_t = s * q_t^T S_h     (current token included)
// computed in the chunked form over chunks aligned to absolute multiples of 64 (a one-token call is
// exactly the recurrence). fp32 state and arithmetic.

#include <cstdint>
#include <vector>

#include "cpu/thread_pool.h"

namespace quire::cpu {

// ALiBi slopes for n heads (Press et al. 2022, "Train Short, Test Long", reference get_slopes):
// for a power of two, start = 2^(-8/n) and slope_i = start^(i+1); otherwise the slopes of the
// closest lower power of two followed by every other slope of the next power of two.
std::vector<double> alibi_slopes(int64_t n);

// q, k: [T, heads, dk]; v: [T, heads, dv]; state: [heads, dk, dv] updated in place;
// out: [T, heads, dv]. Positions pos0 .. pos0+T-1 decide the chunk alignment.
void lightning_attention(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t tokens, int64_t pos0,
                         int64_t heads, int64_t dk, int64_t dv, const std::vector<double>& slopes, float* state,
                         float* out);

}  // namespace quire::cpu
