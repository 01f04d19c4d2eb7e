#pragma once
// Small file helpers shared by the loaders and writers.

#include <cstdint>
#include <string>

#include "status.h"

namespace quire {

// Reads a whole file, refusing files larger than max_bytes.
Result<std::string> read_text_file(const std::string& path, int64_t max_bytes);

// Writes a file so that readers only ever see the old or the new content: data goes to a
// temporary file in the same folder, which commit() fsyncs and renames over the target (then
// fsyncs the folder). Destroyed without commit(), it removes the temporary file.
class AtomicFile {
public:
    static Result<AtomicFile> create(const std::string& path);
    AtomicFile(AtomicFile&& other) noexcept;
    AtomicFile& operator=(AtomicFile&&) = delete;
    ~AtomicFile();

    Status write(const void* data, int64_t size);
    // Writes at an absolute offset without moving the append position (a table filled in last).
    Status write_at(int64_t offset, const void* data, int64_t size);
    // Sets the file's length (zeros past what was written).
    Status resize(int64_t size);
    Status commit();

private:
    AtomicFile() = default;
    std::string path_, tmp_;
    int fd_ = -1;
};

Status write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace quire
