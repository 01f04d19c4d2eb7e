#include "hash.h"

#include <algorithm>
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

namespace {
void absorb_stripe(uint64_t lane[4], const uint8_t* p) {
    uint64_t w[4];
    std::memcpy(w, p, 32);
    lane[0] = step(lane[0], w[0]);
    lane[1] = step(lane[1], w[1]);
    lane[2] = step(lane[2], w[2]);
    lane[3] = step(lane[3], w[3]);
}
// The part after the last whole 32-byte stripe (fewer than 32 bytes).
uint64_t finish(const uint64_t lane[4], uint64_t seed, const uint8_t* p, int64_t rest, int64_t size) {
    uint64_t h = step(step(step(step(seed, lane[0]), lane[1]), lane[2]), lane[3]);
    int64_t i = 0;
    for (; i + 8 <= rest; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = step(h, w);
    }
    uint64_t tail = 0;
    if (rest > i) std::memcpy(&tail, p + i, static_cast<size_t>(rest - i));
    return step(step(h, tail), static_cast<uint64_t>(size));
}
}  // namespace

uint64_t hash64(const void* data, int64_t size, uint64_t seed) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t lane[4] = {seed ^ 0x1111, seed ^ 0x2222, seed ^ 0x3333, seed ^ 0x4444};
    int64_t i = 0;
    for (; i + 32 <= size; i += 32) absorb_stripe(lane, p + i);
    return finish(lane, seed, p + i, size - i, size);
}

Hasher64::Hasher64(uint64_t seed) : seed_(seed), lane_{seed ^ 0x1111, seed ^ 0x2222, seed ^ 0x3333, seed ^ 0x4444} {}

void Hasher64::update(const void* data, int64_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    total_ += size;
    if (pending_size_ > 0) {
        const int64_t take = std::min<int64_t>(32 - pending_size_, size);
        if (take > 0) std::memcpy(pending_ + pending_size_, p, static_cast<size_t>(take));
        pending_size_ += take;
        p += take;
        size -= take;
        if (pending_size_ < 32) return;
        absorb_stripe(lane_, pending_);
        pending_size_ = 0;
    }
    int64_t i = 0;
    for (; i + 32 <= size; i += 32) absorb_stripe(lane_, p + i);
    if (size > i) std::memcpy(pending_, p + i, static_cast<size_t>(size - i));
    pending_size_ = size - i;
}

uint64_t Hasher64::final() const { return finish(lane_, seed_, pending_, pending_size_, total_); }

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
