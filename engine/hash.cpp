#include "hash.h"

#include <cstring>
#include <string>

namespace quire {

namespace {
constexpr uint64_t kP1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
inline uint64_t mix(uint64_t h) {
    h ^= h >> 31;
    h *= kP2;
    h ^= h >> 29;
    return h;
}
inline uint64_t step(uint64_t h, uint64_t w) { return mix((h ^ w) * kP1); }
}  // namespace

uint64_t hash64(const void* data, int64_t size, uint64_t seed) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t lane[4] = {seed ^ 0x1111, seed ^ 0x2222, seed ^ 0x3333, seed ^ 0x4444};
    int64_t i = 0;
    for (; i + 32 <= size; i += 32) {
        uint64_t w[4];
        std::memcpy(w, p + i, 32);
        lane[0] = step(lane[0], w[0]);
        lane[1] = step(lane[1], w[1]);
        lane[2] = step(lane[2], w[2]);
        lane[3] = step(lane[3], w[3]);
    }
    uint64_t h = step(step(step(step(seed, lane[0]), lane[1]), lane[2]), lane[3]);
    for (; i + 8 <= size; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = step(h, w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, p + i, static_cast<size_t>(size - i));
    return step(step(h, tail), static_cast<uint64_t>(size));
}

std::string hash_hex(uint64_t h) {
    static const char* hex = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i) {
        s[static_cast<size_t>(i)] = hex[h & 0xF];
        h >>= 4;
    }
    return s;
}

}  // namespace quire
