#pragma once
// Small file helpers shared by the loaders.

#include <cstdint>
#include <string>

#include "status.h"

namespace quire {

// Reads a whole file, refusing files larger than max_bytes.
Result<std::string> read_text_file(const std::string& path, int64_t max_bytes);

// Writes a file atomically: temporary file in the same folder, fsync, rename, fsync of the folder.
Status write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace quire
