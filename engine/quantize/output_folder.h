#pragma once
// Where `quire quantize` writes: checks on the destination, a hidden temporary folder beside it that
// becomes the destination by one rename at the very end (a killed run never leaves something at DST
// that looks like a model). Files inside it are written with AtomicFile (file_util.h).

#include <cstdint>
#include <string>

#include "status.h"

namespace quire::quantize {

// Refuses DST == SRC, DST inside SRC, SRC inside DST, a DST that is a file, a DST folder that is not
// empty (unless `force`), and a parent folder that is missing or not writable.
Status check_destination(const std::string& src, const std::string& dst, bool force);

// DST as an absolute folder path without a trailing separator, links resolved.
std::string destination_folder(const std::string& dst);

// Free bytes on the file system that holds `dir`.
Result<int64_t> free_bytes(const std::string& dir);

class StagingFolder {
public:
    // Creates DST's hidden sibling ".NAME.quantizing-PID" (removing stale ones of dead processes).
    static Result<StagingFolder> create(const std::string& dst);
    StagingFolder(StagingFolder&& other) noexcept;
    StagingFolder& operator=(StagingFolder&&) = delete;
    ~StagingFolder();  // removes the folder unless commit() succeeded

    const std::string& path() const { return path_; }
    // Moves the finished folder to DST (replacing an existing DST when `replace`).
    Status commit(bool replace);

private:
    StagingFolder() = default;
    std::string path_, dst_;
    bool committed_ = false;
};

}  // namespace quire::quantize
