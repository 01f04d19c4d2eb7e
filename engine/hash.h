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

}  // namespace quire
