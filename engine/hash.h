#pragma once
// A fast 64-bit non-cryptographic hash for checksums and fingerprints (state files, token ids).
// Four independent multiply-xorshift lanes over 8-byte words; any change to one word changes
// its lane's final value (each step is a bijection), so single-bit corruption is always caught.

#include <cstdint>
#include <string_view>

namespace quire {

uint64_t hash64(const void* data, int64_t size, uint64_t seed = 0);
inline uint64_t hash64(std::string_view s, uint64_t seed = 0) { return hash64(s.data(), static_cast<int64_t>(s.size()), seed); }
std::string hash_hex(uint64_t h);

// hash64 of data that arrives in pieces: update() any number of times, then final() equals
// hash64(all bytes, seed). Used to checksum state sections while they stream.
class Hasher64 {
public:
    explicit Hasher64(uint64_t seed = 0);
    void update(const void* data, int64_t size);
    uint64_t final() const;

private:
    uint64_t seed_;
    uint64_t lane_[4];
    uint8_t pending_[32];
    int64_t pending_size_ = 0;
    int64_t total_ = 0;
};

}  // namespace quire
