#include "tiny_gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hash.h"
#include "quant/fp16.h"

namespace quire::tools {

std::string quantization_config_json(const TinyGptqOptions& o) {
    std::string dynamic = "null";
    if (o.dynamic == "sala" || o.dynamic == "mixed") {
        dynamic = "{\"-:.*self_attn\\\\.o_gate.*\": {}, \"-:.*self_attn\\\\.z_proj.*\": {}";
        if (o.dynamic == "mixed") dynamic += ", \"+:.*mlp\\\\.down_proj.*\": {\"bits\": 8, \"group_size\": 64}";
        dynamic += "}";
    }
    return std::string("{\"quant_method\": \"gptq\", \"bits\": ") + std::to_string(o.bits) +
           ", \"group_size\": " + std::to_string(o.group_size) + ", \"sym\": " + (o.sym ? "true" : "false") +
           ", \"desc_act\": " + (o.desc_act ? "true" : "false") + ", \"checkpoint_format\": \"" +
           (o.v2 ? "gptq_v2" : "gptq") + "\", \"pack_dtype\": \"int32\", \"lm_head\": false, \"damp_percent\": 0.05" +
           ", \"true_sequential\": true, \"dynamic\": " + dynamic +
           ", \"meta\": {\"quantizer\": [\"quire-make-tiny-model\"], \"method\": \"rtn\"}}";
}

namespace {
void put_u32(std::string& bytes, int64_t index, uint32_t v) {
    for (int b = 0; b < 4; ++b) bytes[static_cast<size_t>(4 * index + b)] = static_cast<char>((v >> (8 * b)) & 0xFF);
}
uint32_t get_u32(const std::string& bytes, int64_t index) {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(4 * index + b)])) << (8 * b);
    return v;
}
}  // namespace

GptqTensorsBytes rtn_quantize(const std::vector<float>& w, int64_t out, int64_t in, const ModuleQuant& q, bool v2,
                              uint64_t seed) {
    const int64_t gs = q.group_size == -1 ? in : q.group_size;
    const int64_t groups = in / gs;
    const int pw = 32 / q.bits;
    const int maxq = (1 << q.bits) - 1;

    // desc_act: GPTQ visits the columns in a permuted order and numbers the groups in that order, so
    // g_idx[perm[i]] = i / group_size. A seeded shuffle stands in for the Hessian's order.
    std::vector<int64_t> perm(static_cast<size_t>(in));
    std::iota(perm.begin(), perm.end(), 0);
    if (q.desc_act) {
        uint64_t s = seed;
        for (int64_t i = in - 1; i > 0; --i) {
            s = hash64(&s, sizeof s, 0x9E3779B97F4A7C15ull);
            std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(s % static_cast<uint64_t>(i + 1))]);
        }
    }
    std::vector<int32_t> g_idx(static_cast<size_t>(in));
    for (int64_t i = 0; i < in; ++i) g_idx[static_cast<size_t>(perm[static_cast<size_t>(i)])] = static_cast<int32_t>(i / gs);

    GptqTensorsBytes r;
    r.qweight.assign(static_cast<size_t>(in / pw * out * 4), '\0');
    r.qzeros.assign(static_cast<size_t>(groups * (out / pw) * 4), '\0');
    r.scales.assign(static_cast<size_t>(groups * out * 2), '\0');
    r.g_idx.assign(static_cast<size_t>(in * 4), '\0');
    r.dequantized.assign(static_cast<size_t>(out * in), 0.0f);
    for (int64_t k = 0; k < in; ++k) put_u32(r.g_idx, k, static_cast<uint32_t>(g_idx[static_cast<size_t>(k)]));

    std::vector<float> scale(static_cast<size_t>(groups)), zero_of(static_cast<size_t>(groups));
    for (int64_t j = 0; j < out; ++j) {
        const float* row = w.data() + j * in;
        for (int64_t g = 0; g < groups; ++g) {
            // The quantizer's range always includes 0 (as GPTQ's does).
            float lo = 0.0f, hi = 0.0f;
            for (int64_t i = g * gs; i < (g + 1) * gs; ++i) {
                const float v = row[perm[static_cast<size_t>(i)]];
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
            float s;
            int zero;
            if (q.sym) {
                const float m = std::max(-lo, hi);
                s = m > 0.0f ? 2.0f * m / static_cast<float>(maxq) : 1.0f;
                zero = (maxq + 1) / 2;
            } else {
                s = hi > lo ? (hi - lo) / static_cast<float>(maxq) : 1.0f;
                zero = static_cast<int>(std::lround(-lo / s));
                // The gptq format stores zero - 1: a zero of 0 would be stored as -1, which that format
                // cannot hold (docs/quantization.md §4), so it is raised to 1 there.
                if (!v2) zero = std::max(zero, 1);
                zero = std::min(zero, maxq);
            }
            const uint16_t s16 = float_to_fp16(s);
            scale[static_cast<size_t>(g)] = fp16_to_float(s16);
            zero_of[static_cast<size_t>(g)] = static_cast<float>(zero);
            r.scales[static_cast<size_t>(2 * (g * out + j))] = static_cast<char>(s16 & 0xFF);
            r.scales[static_cast<size_t>(2 * (g * out + j) + 1)] = static_cast<char>(s16 >> 8);
            const uint32_t stored = static_cast<uint32_t>(zero - (v2 ? 0 : 1));
            const int64_t zi = g * (out / pw) + j / pw;
            put_u32(r.qzeros, zi, get_u32(r.qzeros, zi) | (stored << (q.bits * (j % pw))));
        }
        for (int64_t k = 0; k < in; ++k) {
            const auto g = static_cast<size_t>(g_idx[static_cast<size_t>(k)]);
            const float s = scale[g];
            const int z = static_cast<int>(zero_of[g]);
            const int qv = std::clamp(static_cast<int>(std::lround(row[k] / s)) + z, 0, maxq);
            const int64_t wi = (k / pw) * out + j;
            put_u32(r.qweight, wi, get_u32(r.qweight, wi) | (static_cast<uint32_t>(qv) << (q.bits * (k % pw))));
            r.dequantized[static_cast<size_t>(j * in + k)] = s * static_cast<float>(qv - z);
        }
    }
    return r;
}

}  // namespace quire::tools
