#include "quantize/quant_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "quant/fp16.h"  // scales are stored as fp16

namespace quire::quantize {

Status check_layer_shape(const QuantSpec& spec, int64_t out, int64_t in, const std::string& name) {
    const std::string shape = " (" + name + " is [" + std::to_string(out) + ", " + std::to_string(in) + "])";
    if (spec.group_size > 0 && in % spec.group_size != 0)
        return Status(ErrorCode::invalid_argument, "--group-size " + std::to_string(spec.group_size) +
                                                       " does not divide the input width " + std::to_string(in) + shape);
    if (in % spec.per_word() != 0 || out % spec.per_word() != 0)
        return Status(ErrorCode::invalid_argument, std::to_string(spec.bits) + "-bit packing needs both widths to be multiples of " +
                                                       std::to_string(spec.per_word()) + shape);
    return Status::ok();
}

int GroupGrid::quantize(float w, int max_code) const {
    const float q = std::nearbyint(w / scale) + static_cast<float>(zero);
    return static_cast<int>(std::clamp(q, 0.0f, static_cast<float>(max_code)));
}

namespace {
// The scale as fp16 stores it; a scale below fp16's range becomes its smallest step.
Result<float> fp16_scale(float scale) {
    if (!std::isfinite(scale) || scale > 65504.0f)
        return Status(ErrorCode::unsupported, "a weight group spans " + std::to_string(scale) +
                                                  " per step, beyond what an fp16 scale can hold (65504)");
    const float s = fp16_to_float(float_to_fp16(scale));
    return s > 0 ? s : std::ldexp(1.0f, -24);
}
}  // namespace

Result<GroupGrid> choose_grid(const float* values, int64_t n, int64_t stride, const QuantSpec& spec) {
    const int maxq = spec.max_code();
    float lo = 0, hi = 0;  // the range always holds 0, so that zero weights stay exact
    for (int64_t i = 0; i < n; ++i) {
        const float v = values[i * stride];
        if (!std::isfinite(v)) return Status(ErrorCode::invalid_checkpoint, "a weight is not a finite number");
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    GroupGrid g;
    if (spec.sym) {
        float a = std::max(-lo, hi);
        if (a == 0) a = 1;
        auto s = fp16_scale(2 * a / static_cast<float>(maxq));
        if (!s) return s.status();
        g.scale = s.value();
        g.zero = (maxq + 1) / 2;
        return g;
    }
    if (lo == hi) lo = -1, hi = 1;
    auto s = fp16_scale((hi - lo) / static_cast<float>(maxq));
    if (!s) return s.status();
    g.scale = s.value();
    g.zero = static_cast<int>(std::clamp(std::nearbyint(-lo / g.scale), 0.0f, static_cast<float>(maxq)));
    if (g.zero < spec.zero_offset) {
        // checkpoint_format "gptq" stores zero - 1, so zero 0 (a group with nothing below ~0) has no
        // code: move the grid one step down and stretch it so that the top still reaches `hi`.
        auto s1 = fp16_scale(hi / static_cast<float>(maxq - 1));
        if (!s1) return s1.status();
        g.scale = s1.value();
        g.zero = 1;
    }
    return g;
}

float QuantizedMatrix::dequantized(int64_t j, int64_t k) const {
    const auto g = static_cast<int64_t>(g_idx[static_cast<size_t>(k)]);
    const auto at = static_cast<size_t>(g * out + j);
    return scales[at] * static_cast<float>(static_cast<int>(codes[static_cast<size_t>(j * in + k)]) - zeros[at]);
}

QuantizedMatrix QuantizedMatrix::sized(int64_t out, int64_t in, const QuantSpec& spec) {
    QuantizedMatrix m;
    m.out = out;
    m.in = in;
    const int64_t groups = spec.groups_of(in);
    m.codes.resize(static_cast<size_t>(out * in));
    m.scales.resize(static_cast<size_t>(groups * out));
    m.zeros.resize(static_cast<size_t>(groups * out));
    m.g_idx.resize(static_cast<size_t>(in));
    return m;
}

Result<QuantizedMatrix> rtn_quantize(cpu::ThreadPool& pool, const float* w, int64_t out, int64_t in, const QuantSpec& spec) {
    QuantizedMatrix m = QuantizedMatrix::sized(out, in, spec);
    const int64_t groups = spec.groups_of(in), len = spec.group_length(in);
    for (int64_t k = 0; k < in; ++k) m.g_idx[static_cast<size_t>(k)] = static_cast<int32_t>(k / len);
    std::mutex failure_mutex;
    Status failure;
    pool.parallel_for(out, [&](int64_t j) {
        for (int64_t g = 0; g < groups; ++g) {
            const float* row = w + j * in + g * len;
            auto grid = choose_grid(row, len, 1, spec);
            if (!grid) {
                std::lock_guard lock(failure_mutex);
                failure = grid.status();
                return;
            }
            m.scales[static_cast<size_t>(g * out + j)] = grid->scale;
            m.zeros[static_cast<size_t>(g * out + j)] = grid->zero;
            uint8_t* codes = m.codes.data() + j * in + g * len;
            for (int64_t k = 0; k < len; ++k) codes[k] = static_cast<uint8_t>(grid->quantize(row[k], spec.max_code()));
        }
    });
    if (!failure.is_ok()) return failure;
    return m;
}

std::vector<int32_t> pack_qweight(const QuantizedMatrix& m, const QuantSpec& spec) {
    const int per = spec.per_word();
    const int64_t rows = m.in / per;
    std::vector<uint32_t> words(static_cast<size_t>(rows * m.out), 0);
    for (int64_t j = 0; j < m.out; ++j) {
        const uint8_t* codes = m.codes.data() + j * m.in;
        for (int64_t r = 0; r < rows; ++r) {
            uint32_t word = 0;
            for (int t = 0; t < per; ++t) word |= static_cast<uint32_t>(codes[r * per + t]) << (spec.bits * t);
            words[static_cast<size_t>(r * m.out + j)] = word;
        }
    }
    std::vector<int32_t> out(words.size());
    std::memcpy(out.data(), words.data(), words.size() * 4);
    return out;
}

std::vector<int32_t> pack_qzeros(const QuantizedMatrix& m, const QuantSpec& spec) {
    const int per = spec.per_word();
    const int64_t groups = m.groups(), cols = m.out / per;
    std::vector<uint32_t> words(static_cast<size_t>(groups * cols), 0);
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t c = 0; c < cols; ++c) {
            uint32_t word = 0;
            for (int t = 0; t < per; ++t) {
                const int32_t stored = m.zeros[static_cast<size_t>(g * m.out + c * per + t)] - spec.zero_offset;
                word |= static_cast<uint32_t>(stored) << (spec.bits * t);
            }
            words[static_cast<size_t>(g * cols + c)] = word;
        }
    std::vector<int32_t> out(words.size());
    std::memcpy(out.data(), words.data(), words.size() * 4);
    return out;
}

std::vector<uint16_t> pack_scales(const QuantizedMatrix& m) {
    std::vector<uint16_t> out(m.scales.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = float_to_fp16(m.scales[i]);
    return out;
}

WeightError weight_error(cpu::ThreadPool& pool, const float* w, const QuantizedMatrix& m) {
    std::mutex mutex;
    double err = 0, norm = 0;
    int64_t nonzero = 0, zeroed = 0;
    constexpr int64_t kRows = 64;
    pool.parallel_for((m.out + kRows - 1) / kRows, [&](int64_t chunk) {
        double e = 0, n = 0;
        int64_t nz = 0, z = 0;
        for (int64_t j = chunk * kRows; j < std::min(m.out, (chunk + 1) * kRows); ++j)
            for (int64_t k = 0; k < m.in; ++k) {
                const double v = w[j * m.in + k], q = m.dequantized(j, k), d = v - q;
                e += d * d;
                n += v * v;
                if (v != 0) {
                    ++nz;
                    if (q == 0) ++z;
                }
            }
        std::lock_guard lock(mutex);
        err += e;
        norm += n;
        nonzero += nz;
        zeroed += z;
    });
    WeightError r;
    r.relative = norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
    r.zeroed = nonzero > 0 ? static_cast<double>(zeroed) / static_cast<double>(nonzero) : 0;
    return r;
}

}  // namespace quire::quantize
