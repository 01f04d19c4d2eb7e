#include "cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>

#include "bf16.h"
#include "cpu/vec_math.h"
#include "quant/gptq_dequant.h"

namespace quire::cpu {

void round_rows(float* x, int64_t n, bool round) {
    if (!round) return;
    for (int64_t i = 0; i < n; ++i) x[i] = round_bf16(x[i]);
}

namespace {
// Work items: a tile of weight rows (converted to fp32 once by `load_rows`) times a block of tokens.
template <typename LoadRows>
void tiled_matmul(ThreadPool& pool, const float* x, int64_t tokens, int64_t in, int64_t out, float* y, bool round,
                  const LoadRows& load_rows) {
    const int64_t row_tile = std::max<int64_t>(1, std::min<int64_t>(64, (1 << 16) / std::max<int64_t>(in, 1)));
    const int64_t tok_block = 64;
    const int64_t row_tiles = (out + row_tile - 1) / row_tile;
    const int64_t tok_blocks = (tokens + tok_block - 1) / tok_block;
    pool.parallel_for(row_tiles * tok_blocks, [&](int64_t item) {
        const int64_t rt = item % row_tiles, tb = item / row_tiles;
        const int64_t r0 = rt * row_tile, r1 = std::min(out, r0 + row_tile);
        const int64_t t0 = tb * tok_block, t1 = std::min(tokens, t0 + tok_block);
        thread_local std::vector<float> wf;
        wf.resize(static_cast<size_t>((r1 - r0) * in));
        load_rows(r0, r1, wf.data());
        for (int64_t t = t0; t < t1; ++t) {
            const float* xr = x + t * in;
            float* yr = y + t * out;
            for (int64_t r = r0; r < r1; ++r) {
                const float v = dot(xr, wf.data() + (r - r0) * in, in);
                yr[r] = round ? round_bf16(v) : v;
            }
        }
    });
}
}  // namespace

void matmul_bf16(ThreadPool& pool, const float* x, int64_t tokens, int64_t in, const uint16_t* w, int64_t out,
                 float* y, bool round) {
    tiled_matmul(pool, x, tokens, in, out, y, round, [&](int64_t r0, int64_t r1, float* dst) {
        for (int64_t r = r0; r < r1; ++r) bf16_to_float_row(w + r * in, dst + (r - r0) * in, in);
    });
}

void matmul_gptq(ThreadPool& pool, const float* x, int64_t tokens, const GptqTensors& w, float* y, bool round) {
    tiled_matmul(pool, x, tokens, w.in, w.out, y, round,
                 [&](int64_t r0, int64_t r1, float* dst) { gptq_dequantize_rows(w, r0, r1, dst, round); });
}

void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, double eps, float* y, bool round) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        const float var = dot(xr, xr, n) / static_cast<float>(n);
        const float inv = 1.0f / std::sqrt(var + static_cast<float>(eps));
        for (int64_t i = 0; i < n; ++i) {
            const float v = xr[i] * inv;
            const float vr = round ? round_bf16(v) : v;
            yr[i] = round ? round_bf16(vr * w[i]) : vr * w[i];
        }
    }
}

void rope(float* x, int64_t tokens, int64_t heads, int64_t dim, int64_t pos0, double theta, bool round) {
    const int64_t half = dim / 2;
    std::vector<float> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)  // torch: 1 / base ** (arange(0, dim, 2).float() / dim), in fp32
        inv_freq[static_cast<size_t>(i)] =
            1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * i) / static_cast<float>(dim));
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int64_t t = 0; t < tokens; ++t) {
        const auto p = static_cast<float>(pos0 + t);
        for (int64_t i = 0; i < half; ++i) {
            const float angle = p * inv_freq[static_cast<size_t>(i)];  // fp32 product, as in the HF table
            cs[static_cast<size_t>(i)] = std::cos(angle);
            sn[static_cast<size_t>(i)] = std::sin(angle);
        }
        for (int64_t h = 0; h < heads; ++h) {
            float* v = x + (t * heads + h) * dim;
            for (int64_t i = 0; i < half; ++i) {
                const float a = v[i], b = v[i + half];
                const float c = cs[static_cast<size_t>(i)], s = sn[static_cast<size_t>(i)];
                const float ra = a * c - b * s;  // x*cos + rotate_half(x)*sin, rotate_half([a,b]) = [-b,a]
                const float rb = b * c + a * s;
                v[i] = round ? round_bf16(ra) : ra;
                v[i + half] = round ? round_bf16(rb) : rb;
            }
        }
    }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, bool round) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        float s = g / (1.0f + std::exp(-g));
        if (round) s = round_bf16(s);
        const float v = s * up[i];
        out[i] = round ? round_bf16(v) : v;
    }
}

void sigmoid_gate(float* x, const float* g, int64_t n, bool round) {
    for (int64_t i = 0; i < n; ++i) {
        float s = 1.0f / (1.0f + std::exp(-g[i]));
        if (round) s = round_bf16(s);
        const float v = x[i] * s;
        x[i] = round ? round_bf16(v) : v;
    }
}

void residual_add(float* x, const float* a, float scale, int64_t n, bool round) {
    for (int64_t i = 0; i < n; ++i) {
        float s = a[i] * scale;
        if (round) s = round_bf16(s);
        const float v = x[i] + s;
        x[i] = round ? round_bf16(v) : v;
    }
}

}  // namespace quire::cpu
