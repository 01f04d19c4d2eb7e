#include "quantize/gptq.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

namespace quire::quantize {

namespace {

double dot(const float* a, const float* b, int64_t n) {
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int t = 0; t < 4; ++t) s[t] += static_cast<double>(a[i + t]) * b[i + t];
    for (; i < n; ++i) s[0] += static_cast<double>(a[i]) * b[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// a = L L^T in place (L in the lower triangle, the upper one left as it was); false when a is not
// positive definite. Left-looking by panels of kPanel columns: a row below the panel is read once per
// panel (its prefix stays in cache for all the panel's columns), not once per column.
bool cholesky_lower(cpu::ThreadPool& pool, float* a, int64_t n, const std::atomic<bool>* cancel) {
    constexpr int64_t kPanel = 64, kRows = 16;
    for (int64_t j0 = 0; j0 < n; j0 += kPanel) {
        if (cancel && cancel->load()) return false;
        const int64_t j1 = std::min(n, j0 + kPanel);
        for (int64_t j = j0; j < j1; ++j) {  // the panel's own rows, in order
            float* lj = a + j * n;
            for (int64_t c = j0; c < j; ++c) lj[c] = static_cast<float>((lj[c] - dot(lj, a + c * n, c)) / a[c * n + c]);
            const double d = static_cast<double>(lj[j]) - dot(lj, lj, j);
            if (!(d > 0) || !std::isfinite(d)) return false;
            lj[j] = static_cast<float>(std::sqrt(d));
        }
        pool.parallel_for(ceil_div(n - j1, kRows), [&](int64_t chunk) {
            for (int64_t i = j1 + chunk * kRows; i < std::min(n, j1 + (chunk + 1) * kRows); ++i) {
                float* li = a + i * n;
                for (int64_t j = j0; j < j1; ++j) li[j] = static_cast<float>((li[j] - dot(li, a + j * n, j)) / a[j * n + j]);
            }
        });
    }
    return true;
}

// Replaces the lower-triangular L (lower triangle of a) by X = L^-1, by blocks of kBlock rows: row i
// of X is -(sum over k < i of L[i][k] * row k of X) / L[i][i], plus 1 / L[i][i] on the diagonal.
// The rows of a block share every row k above the block (read once per block and column strip).
void invert_lower(cpu::ThreadPool& pool, float* a, int64_t n, const std::atomic<bool>* cancel) {
    constexpr int64_t kBlock = 32, kCols = 256;
    std::vector<float> l(static_cast<size_t>(kBlock * n));  // the block's rows of L
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        if (cancel && cancel->load()) return;
        const int64_t i1 = std::min(n, i0 + kBlock), rows = i1 - i0;
        for (int64_t r = 0; r < rows; ++r) std::copy(a + (i0 + r) * n, a + (i0 + r) * n + i0 + r + 1, l.begin() + r * n);
        // Columns left of the block: each strip of kCols columns is independent.
        pool.parallel_for(ceil_div(i0, kCols), [&](int64_t strip) {
            const int64_t c0 = strip * kCols, c1 = std::min(i0, c0 + kCols), w = c1 - c0;
            std::vector<double> acc(static_cast<size_t>(kBlock * kCols), 0.0);
            for (int64_t k = c0; k < i0; ++k) {  // rows above the block
                const float* xk = a + k * n;
                const int64_t upto = std::min(c1, k + 1) - c0;
                for (int64_t r = 0; r < rows; ++r) {
                    const double lk = l[static_cast<size_t>(r * n + k)];
                    if (lk == 0) continue;
                    double* ar = acc.data() + r * kCols;
                    for (int64_t c = 0; c < upto; ++c) ar[c] += lk * xk[c0 + c];
                }
            }
            for (int64_t r = 0; r < rows; ++r) {  // rows of the block, in order
                double* ar = acc.data() + r * kCols;
                for (int64_t k = 0; k < r; ++k) {
                    const double lk = l[static_cast<size_t>(r * n + i0 + k)];
                    const float* xk = a + (i0 + k) * n + c0;
                    for (int64_t c = 0; c < w; ++c) ar[c] += lk * xk[c];
                }
                const double inv = 1.0 / l[static_cast<size_t>(r * n + i0 + r)];
                float* xi = a + (i0 + r) * n + c0;
                for (int64_t c = 0; c < w; ++c) xi[c] = static_cast<float>(-ar[c] * inv);
            }
        });
        for (int64_t r = 0; r < rows; ++r) {  // the block's own triangle
            const int64_t i = i0 + r;
            const double inv = 1.0 / l[static_cast<size_t>(r * n + i)];
            for (int64_t c = i0; c < i; ++c) {
                double sum = 0;
                for (int64_t k = c; k < i; ++k) sum += static_cast<double>(l[static_cast<size_t>(r * n + k)]) * a[k * n + c];
                a[i * n + c] = static_cast<float>(-sum * inv);
            }
            a[i * n + i] = static_cast<float>(inv);
        }
    }
}

}  // namespace

Result<QuantizedMatrix> gptq_quantize(cpu::ThreadPool& pool, const float* w, int64_t out, int64_t in, const float* h,
                                      const QuantSpec& spec, const GptqOptions& options) {
    const int64_t n = in;
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    if (options.act_order)
        std::stable_sort(perm.begin(), perm.end(), [&](int64_t x, int64_t y) { return h[x * n + x] > h[y * n + y]; });
    // Columns no calibration input ever reached (diag 0) carry no information: GPTQ sets them to 0.
    std::vector<char> dead(static_cast<size_t>(n));
    double mean_diag = 0;
    for (int64_t x = 0; x < n; ++x) {
        const float d = h[perm[static_cast<size_t>(x)] * (n + 1)];
        dead[static_cast<size_t>(x)] = d == 0;
        mean_diag += d == 0 ? 1.0 : d;
    }
    mean_diag /= static_cast<double>(n);

    // U, the upper Cholesky factor of H^-1 (H permuted and damped), without forming H^-1: with P the
    // reversal, the lower factor M of P H P gives H = (P M P)(P M P)^T with P M P upper, so
    // H^-1 = U^T U for U = P M^-1 P; and reversing a row-major square array is exactly X -> P X P.
    std::vector<float> u(static_cast<size_t>(n * n));
    double damp = options.damp;
    for (int attempt = 0;; ++attempt) {
        pool.parallel_for(n, [&](int64_t i) {
            const int64_t src = perm[static_cast<size_t>(n - 1 - i)];
            float* row = u.data() + i * n;
            for (int64_t b = 0; b < n; ++b) row[b] = h[src * n + perm[static_cast<size_t>(n - 1 - b)]];
            if (dead[static_cast<size_t>(n - 1 - i)]) row[i] = 1;
            row[i] += static_cast<float>(damp * mean_diag);
        });
        const bool factored = cholesky_lower(pool, u.data(), n, options.cancel);
        if (options.cancel && options.cancel->load()) return Status(ErrorCode::cancelled, "interrupted");
        if (factored) break;
        if (attempt == 3)
            return Status(ErrorCode::invalid_argument, "the calibration Hessian is not positive definite even with damping " +
                                                           std::to_string(damp) + " (more calibration text may help)");
        damp *= 10;
    }
    invert_lower(pool, u.data(), n, options.cancel);
    if (options.cancel && options.cancel->load()) return Status(ErrorCode::cancelled, "interrupted");
    std::reverse(u.begin(), u.end());

    QuantizedMatrix m = QuantizedMatrix::sized(out, in, spec);
    const int64_t len = spec.group_length(n);
    for (int64_t x = 0; x < n; ++x) m.g_idx[static_cast<size_t>(perm[static_cast<size_t>(x)])] = static_cast<int32_t>(x / len);
    // A group's grid is chosen from its columns' values when its first column comes up; every column
    // of the group must then already hold all earlier updates, which holds when groups do not
    // straddle a block boundary.
    const int64_t block = (len % options.block == 0 || options.block % len == 0) ? options.block : len;

    constexpr int64_t kTile = 8;
    std::mutex failure_mutex;
    Status failure;
    pool.parallel_for(ceil_div(out, kTile), [&](int64_t tile) {
        const int64_t j0 = tile * kTile, rows = std::min(kTile, out - j0);
        std::vector<float> v(static_cast<size_t>(rows * n));
        std::vector<float> err(static_cast<size_t>(rows * block));
        std::vector<GroupGrid> grid(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t x = 0; x < n; ++x)
                v[static_cast<size_t>(r * n + x)] = dead[static_cast<size_t>(x)] ? 0.0f : w[(j0 + r) * n + perm[static_cast<size_t>(x)]];
        for (int64_t i1 = 0; i1 < n; i1 += block) {
            const int64_t i2 = std::min(n, i1 + block);
            if (options.cancel && options.cancel->load()) return;
            for (int64_t r = 0; r < rows; ++r) {
                float* vr = v.data() + r * n;
                const int64_t j = j0 + r;
                for (int64_t i = i1; i < i2; ++i) {
                    GroupGrid& g = grid[static_cast<size_t>(r)];
                    if (i % len == 0) {
                        auto chosen = choose_grid(vr + i, len, 1, spec);
                        if (!chosen) {
                            std::lock_guard lock(failure_mutex);
                            failure = chosen.status();
                            return;
                        }
                        g = chosen.value();
                        m.scales[static_cast<size_t>((i / len) * out + j)] = g.scale;
                        m.zeros[static_cast<size_t>((i / len) * out + j)] = g.zero;
                    }
                    const int q = g.quantize(vr[i], spec.max_code());
                    m.codes[static_cast<size_t>(j * n + perm[static_cast<size_t>(i)])] = static_cast<uint8_t>(q);
                    const float* ui = u.data() + i * n;
                    const float e = (vr[i] - g.dequantize(q)) / ui[i];
                    for (int64_t k = i + 1; k < i2; ++k) vr[k] -= e * ui[k];
                    err[static_cast<size_t>(r * block + (i - i1))] = e;
                }
            }
            for (int64_t t = 0; t < i2 - i1; ++t) {  // the lazy update of the columns after the block
                const float* ut = u.data() + (i1 + t) * n;
                for (int64_t r = 0; r < rows; ++r) {
                    const float e = err[static_cast<size_t>(r * block + t)];
                    if (e == 0) continue;
                    float* vr = v.data() + r * n;
                    for (int64_t k = i2; k < n; ++k) vr[k] -= e * ut[k];
                }
            }
        }
    });
    if (!failure.is_ok()) return failure;
    if (options.cancel && options.cancel->load()) return Status(ErrorCode::cancelled, "interrupted");
    return m;
}

void accumulate_xtx(cpu::ThreadPool& pool, const float* x, int64_t rows, int64_t cols, float* h) {
    constexpr int64_t kA = 64, kB = 1024;
    const int64_t nb = ceil_div(cols, kB);
    pool.parallel_for(ceil_div(cols, kA) * nb, [&](int64_t item) {
        const int64_t a0 = (item / nb) * kA, a1 = std::min(cols, a0 + kA);
        const int64_t b0 = (item % nb) * kB, b1 = std::min(cols, b0 + kB);
        for (int64_t t = 0; t < rows; ++t) {
            const float* xt = x + t * cols;
            for (int64_t a = a0; a < a1; ++a) {
                const float xa = xt[a];
                if (xa == 0) continue;
                float* ha = h + a * cols;
                for (int64_t b = b0; b < b1; ++b) ha[b] += xa * xt[b];
            }
        }
    });
}

double calibration_loss(cpu::ThreadPool& pool, const float* w, const QuantizedMatrix& q, const float* x, int64_t rows) {
    const int64_t n = q.in;
    constexpr int64_t kTile = 8;
    std::mutex mutex;
    double num = 0, den = 0;
    pool.parallel_for(ceil_div(q.out, kTile), [&](int64_t tile) {
        const int64_t j0 = tile * kTile, tile_rows = std::min(kTile, q.out - j0);
        std::vector<float> d(static_cast<size_t>(tile_rows * n));
        for (int64_t r = 0; r < tile_rows; ++r)
            for (int64_t k = 0; k < n; ++k) d[static_cast<size_t>(r * n + k)] = w[(j0 + r) * n + k] - q.dequantized(j0 + r, k);
        double tn = 0, td = 0;
        for (int64_t t = 0; t < rows; ++t)
            for (int64_t r = 0; r < tile_rows; ++r) {
                const double e = dot(d.data() + r * n, x + t * n, n), y = dot(w + (j0 + r) * n, x + t * n, n);
                tn += e * e;
                td += y * y;
            }
        std::lock_guard lock(mutex);
        num += tn;
        den += td;
    });
    return den > 0 ? num / den : 0;
}

}  // namespace quire::quantize
