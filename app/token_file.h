#pragma once
// Token-id files for `quire generate --tokens` and `quire logits --tokens`: whitespace-separated
// non-negative 32-bit ids in a regular file of at most 64 MiB.

#include <cstdint>
#include <string>
#include <vector>

namespace quire::cli {

// false with a message naming the file and the bad word, or why the file cannot be read.
bool read_token_file(const std::string& path, std::vector<int32_t>& out, std::string& error);

}  // namespace quire::cli
