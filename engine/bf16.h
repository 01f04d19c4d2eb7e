#pragma once
// bfloat16 <-> float conversion with round-to-nearest-even (what torch does on .to(bfloat16)), and
// float16 -> bfloat16 for float16 checkpoints (docs/model.md §6).

#include <cmath>
#include <cstdint>
#include <cstring>

#include "quant/fp16.h"

namespace quire {

inline float bf16_to_float(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    const uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<uint16_t>((u + rounding) >> 16);
}

// Rounds a float to the nearest bf16 value and returns it as float.
inline float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// float16 -> bfloat16, round to nearest even: fp16 -> fp32 is exact, so this is the one rounding
// torch's .to(bfloat16) makes. bf16 has fp32's exponent range, so every fp16 value (subnormals,
// infinities) lands in range; only the 3 lowest of fp16's 10 mantissa bits can be rounded away.
inline uint16_t fp16_to_bf16(uint16_t h) { return float_to_bf16(fp16_to_float(h)); }

}  // namespace quire
