#pragma once
// Inner loops of the CPU engine. Each is compiled twice (AVX2 and baseline x86-64) and picked at
// load time, so one binary runs everywhere. Summation order is fixed (8 partial sums) and no FMA
// contraction happens in ISO C++ mode, so both versions give bit-identical results.

#include <cstdint>

namespace quire::cpu {

float dot(const float* a, const float* b, int64_t n);
// y += a * x
void axpy(float* y, float a, const float* x, int64_t n);
// y = a * y
void scale(float* y, float a, int64_t n);
// Attention block kernels over `rows` consecutive keys/values (row stride in floats):
// scores[h * ld + r] = scale * dot(q[h], k[r])          for h < heads
void qk_block(const float* q, int64_t heads, int64_t d, const float* k, int64_t k_stride, int64_t rows, float scale,
              float* scores, int64_t ld);
// The same over one 64-key block given transposed (kt: [d][64], zero rows where no key exists):
// scores[h * ld + r] = scale * sum_c q[h][c] * kt[c][r], summed over c in order.
void qk_block_t64(const float* q, int64_t heads, int64_t d, const float* kt, float scale, float* scores, int64_t ld);
// kt[c * 64 + r] = k[r * k_stride + c] for r < rows, 0 for rows <= r < 64.
void transpose_block64(const float* k, int64_t k_stride, int64_t rows, int64_t d, float* kt);
// out[h] += sum_r p[h * ld + r] * v[r]                    for h < heads
void pv_block(const float* p, int64_t ld, int64_t heads, const float* v, int64_t v_stride, int64_t rows, int64_t d,
              float* out);
// dst[i] = float(bf16 src[i])
void bf16_to_float_row(const uint16_t* src, float* dst, int64_t n);

}  // namespace quire::cpu
