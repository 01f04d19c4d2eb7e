#pragma once
// The quantized form of one linear layer in the Hugging Face GPTQ layout (docs/quantization.md,
// "Making a quantized model"; the same formula as kernels/gptq_view.h): W [out, in] becomes integer
// codes q in [0, 2^bits - 1] with, per group of input columns and per output row, an fp16 scale and
// an integer zero point, so that
//
//   W[j, k] ~ scale[g_idx[k], j] * (q[j, k] - zero[g_idx[k], j])
//
// This file holds the grid (how a group's scale and zero are chosen), round-to-nearest (RTN)
// quantization, and the packing into qweight / qzeros / scales / g_idx tensors.

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"
#include "status.h"

namespace quire::quantize {

struct QuantSpec {
    int bits = 4;              // 4 or 8
    int64_t group_size = 128;  // input columns per group; -1: one group over the whole input
    bool sym = true;           // symmetric grid around a fixed mid-point zero
    int zero_offset = 1;       // 1: checkpoint_format "gptq" stores zero - 1; 0: "gptq_v2" stores zero
    int max_code() const { return (1 << bits) - 1; }
    int per_word() const { return 32 / bits; }
    // The group size of a layer with `in` input columns (-1 becomes `in`).
    int64_t groups_of(int64_t in) const { return group_size < 0 ? 1 : in / group_size; }
    int64_t group_length(int64_t in) const { return group_size < 0 ? in : group_size; }
};

// One layer's checks against the spec: the group size divides `in`, the packing divides both sides.
Status check_layer_shape(const QuantSpec& spec, int64_t out, int64_t in, const std::string& name);

// The grid of one group of values of one output row.
struct GroupGrid {
    float scale = 1;  // already representable in fp16
    int zero = 0;
    int quantize(float w, int max_code) const;
    float dequantize(int q) const { return scale * static_cast<float>(q - zero); }
};
// Chooses the grid from the group's values: symmetric (absmax, zero at the mid-point 2^(bits-1)) or
// asymmetric (min/max, zero rounded); a zero point the checkpoint format cannot store is avoided.
Result<GroupGrid> choose_grid(const float* values, int64_t n, int64_t stride, const QuantSpec& spec);

struct QuantizedMatrix {
    int64_t out = 0, in = 0;
    std::vector<uint8_t> codes;   // [out, in], row-major as W
    std::vector<float> scales;    // [groups, out] (fp16 values)
    std::vector<int32_t> zeros;   // [groups, out] (true zero points, before zero_offset)
    std::vector<int32_t> g_idx;   // [in]: the group of every input column
    int64_t groups() const { return in ? static_cast<int64_t>(scales.size()) / out : 0; }
    float dequantized(int64_t j, int64_t k) const;
    // Storage for an [out, in] matrix under `spec` (g_idx left to the caller).
    static QuantizedMatrix sized(int64_t out, int64_t in, const QuantSpec& spec);
};

// Round-to-nearest: every group's grid from its own values, each weight to its nearest code.
Result<QuantizedMatrix> rtn_quantize(cpu::ThreadPool& pool, const float* w, int64_t out, int64_t in, const QuantSpec& spec);

// The four tensors of the layout, as little-endian bytes ready for a safetensors shard.
std::vector<int32_t> pack_qweight(const QuantizedMatrix& m, const QuantSpec& spec);  // [in / per_word, out]
std::vector<int32_t> pack_qzeros(const QuantizedMatrix& m, const QuantSpec& spec);   // [groups, out / per_word]
std::vector<uint16_t> pack_scales(const QuantizedMatrix& m);                          // [groups, out] fp16

// How much of W the quantized matrix keeps: ||W - Q||_F / ||W||_F, and the share of W's nonzero
// weights that became exactly 0 (an outlier stretches its group's grid until the ordinary weights
// all round to the zero code: a small relative error, most of the layer gone).
struct WeightError {
    double relative = 0;
    double zeroed = 0;
};
WeightError weight_error(cpu::ThreadPool& pool, const float* w, const QuantizedMatrix& m);

}  // namespace quire::quantize
