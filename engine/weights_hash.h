#pragma once
// A hash of a weight shard's bytes, so that a saved state is tied to the weights it was made with
// and not only to their headers (changed weights with the same shapes must not reuse a state).
// Hashing 19 GB takes seconds even on many threads, so the result is cached per file, keyed by its
// absolute path, size and modification time, in $XDG_CACHE_HOME/quire/weights-hash.tsv (or
// ~/.cache/quire/); without a writable cache it is computed on every load.

#include <cstdint>
#include <string>

namespace quire {

// hash64 of the file's bytes, in blocks hashed on several threads (data: the mapped file).
uint64_t content_hash(const uint8_t* data, int64_t size);

// content_hash of the file at path (mapped as data/size), through the cache.
uint64_t cached_content_hash(const std::string& path, const uint8_t* data, int64_t size);

}  // namespace quire
