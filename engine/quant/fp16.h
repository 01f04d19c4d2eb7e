#pragma once
// IEEE 754 binary16 <-> float (GPTQ scales are fp16). float -> half rounds to nearest even, as
// torch's .to(float16) does; subnormals, infinities and NaN are kept.

#include <cstdint>
#include <cstring>

namespace quire {

inline float fp16_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t u;
    if (exp == 0x1F) {
        u = sign | 0x7F800000u | (mant << 13);  // inf / NaN
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;  // +-0
    } else {      // subnormal: normalise
        int e = -1;
        do {
            mant <<= 1;
            ++e;
        } while (!(mant & 0x400u));
        u = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FFu) << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t float_to_fp16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // NaN
    if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: inf
    if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
        if (abs < 0x33000000u) return sign;  // below half of the smallest subnormal (2^-25)
        const uint32_t exp = abs >> 23;
        const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126 - exp;  // 14 + (113 - exp) ... value = mant * 2^(exp-150), unit 2^-24
        const uint32_t q = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        const uint32_t r = q + ((rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u);
        return static_cast<uint16_t>(sign | r);
    }
    const uint32_t rounded = abs + 0xFFFu + ((abs >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
}

}  // namespace quire
