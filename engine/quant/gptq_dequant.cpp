#include "quant/gptq_dequant.h"

#include <cstring>
#include <vector>

#include "bf16.h"
#include "quant/fp16.h"

namespace quire {

namespace {
int64_t group_of(const GptqTensors& t, int64_t k) { return t.g_idx ? t.g_idx[k] : k / t.group_size; }

uint32_t zero_of(const GptqTensors& t, int64_t g, int64_t j) {
    const int pw = t.per_word();
    const auto word = static_cast<uint32_t>(t.qzeros[g * (t.out / pw) + j / pw]);
    return (word >> (t.bits * (j % pw))) & t.mask();
}
}  // namespace

float gptq_weight(const GptqTensors& t, int64_t j, int64_t k) {
    const int pw = t.per_word();
    const int64_t g = group_of(t, k);
    const auto word = static_cast<uint32_t>(t.qweight[(k / pw) * t.out + j]);
    const auto q = static_cast<int32_t>((word >> (t.bits * (k % pw))) & t.mask());
    const auto z = static_cast<int32_t>(zero_of(t, g, j)) + t.zero_offset;
    return fp16_to_float(t.scales[g * t.out + j]) * static_cast<float>(q - z);
}

void gptq_dequantize_rows(const GptqTensors& t, int64_t r0, int64_t r1, float* dst, bool round_to_bf16) {
    const int pw = t.per_word();
    const int64_t rows = r1 - r0, groups = t.groups();
    // Per-tile tables of scale and zero (zero_offset included) for every group: the inner loop then
    // only unpacks.
    thread_local std::vector<float> scale, zero;
    scale.resize(static_cast<size_t>(groups * rows));
    zero.resize(static_cast<size_t>(groups * rows));
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t j = r0; j < r1; ++j) {
            scale[static_cast<size_t>(g * rows + j - r0)] = fp16_to_float(t.scales[g * t.out + j]);
            zero[static_cast<size_t>(g * rows + j - r0)] = static_cast<float>(static_cast<int32_t>(zero_of(t, g, j)) + t.zero_offset);
        }
    const int64_t words = t.in / pw;
    for (int64_t w = 0; w < words; ++w) {
        const int32_t* row = t.qweight + w * t.out;
        // Contiguous groups hold whole words (group_size is a multiple of 32 or all of `in`).
        const int64_t word_group = t.g_idx ? -1 : (w * pw) / t.group_size;
        for (int64_t j = r0; j < r1; ++j) {
            const auto word = static_cast<uint32_t>(row[j]);
            float* out = dst + (j - r0) * t.in + w * pw;
            for (int b = 0; b < pw; ++b) {
                const int64_t g = word_group >= 0 ? word_group : t.g_idx[w * pw + b];
                const size_t gi = static_cast<size_t>(g * rows + j - r0);
                const auto q = static_cast<float>((word >> (t.bits * b)) & t.mask());
                // (q - z) is a small exact integer and the scale an fp16: the product is exact in fp32.
                const float v = scale[gi] * (q - zero[gi]);
                out[b] = round_to_bf16 ? round_bf16(v) : v;
            }
        }
    }
}

}  // namespace quire
