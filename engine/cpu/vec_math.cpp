#include "cpu/vec_math.h"

#include <cstring>

#define QUIRE_CLONES __attribute__((target_clones("avx2", "default")))

namespace quire::cpu {


QUIRE_CLONES void axpy(float* __restrict y, float a, const float* __restrict x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

QUIRE_CLONES void scale(float* y, float a, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

namespace {
// 8 lanes of float: one AVX register in the avx2 clone, two SSE registers in the baseline one.
typedef float v8 __attribute__((vector_size(32)));
inline v8 load8(const float* p) {
    v8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
// Same summation order as dot(): lane j sums elements j, j+8, j+16, ...; then a fixed tree.
inline float dot_inline(const float* a, const float* b, int64_t n) {
    v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(a + i) * load8(b + i);
    float tail = 0.f;
    for (; i < n; ++i) tail += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}
}  // namespace

QUIRE_CLONES float dot(const float* a, const float* b, int64_t n) { return dot_inline(a, b, n); }

QUIRE_CLONES void qk_block(const float* q, int64_t heads, int64_t d, const float* k, int64_t k_stride, int64_t rows,
                           float scale, float* scores, int64_t ld) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* kr = k + r * k_stride;
        for (int64_t h = 0; h < heads; ++h) scores[h * ld + r] = scale * dot_inline(q + h * d, kr, d);
    }
}

QUIRE_CLONES void qk_block_t64(const float* q, int64_t heads, int64_t d, const float* kt, float scale, float* scores,
                               int64_t ld) {
    for (int64_t h = 0; h < heads; ++h) {
        v8 acc[8] = {};
        const float* qh = q + h * d;
        for (int64_t c = 0; c < d; ++c) {
            const float qc = qh[c];
            const v8 qb = {qc, qc, qc, qc, qc, qc, qc, qc};
            const float* row = kt + c * 64;
            for (int j = 0; j < 8; ++j) acc[j] += qb * load8(row + 8 * j);
        }
        float* out = scores + h * ld;
        for (int j = 0; j < 8; ++j) {
            const v8 v = acc[j] * scale;
            std::memcpy(out + 8 * j, &v, sizeof v);
        }
    }
}

void transpose_block64(const float* k, int64_t k_stride, int64_t rows, int64_t d, float* kt) {
    for (int64_t c = 0; c < d; ++c)
        for (int64_t r = 0; r < 64; ++r) kt[c * 64 + r] = r < rows ? k[r * k_stride + c] : 0.0f;
}

QUIRE_CLONES void pv_block(const float* __restrict p, int64_t ld, int64_t heads, const float* __restrict v,
                           int64_t v_stride, int64_t rows, int64_t d, float* __restrict out) {
    // Accumulate 64 output columns at a time in registers; rows in order, so each output element
    // is summed in the same order as the plain loop would.
    for (int64_t h = 0; h < heads; ++h) {
        const float* ph = p + h * ld;
        float* oh = out + h * d;
        int64_t c0 = 0;
        for (; c0 + 64 <= d; c0 += 64) {
            v8 acc[8];
            for (int j = 0; j < 8; ++j) acc[j] = load8(oh + c0 + 8 * j);
            for (int64_t r = 0; r < rows; ++r) {
                const float w = ph[r];
                const v8 wb = {w, w, w, w, w, w, w, w};
                const float* vr = v + r * v_stride + c0;
                for (int j = 0; j < 8; ++j) acc[j] += wb * load8(vr + 8 * j);
            }
            for (int j = 0; j < 8; ++j) std::memcpy(oh + c0 + 8 * j, &acc[j], sizeof(v8));
        }
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = c0; c < d; ++c) oh[c] += ph[r] * v[r * v_stride + c];
    }
}

QUIRE_CLONES void bf16_to_float_row(const uint16_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t u = static_cast<uint32_t>(src[i]) << 16;
        std::memcpy(dst + i, &u, 4);
    }
}

}  // namespace quire::cpu
