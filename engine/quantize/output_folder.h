#pragma once
// Where `quire quantize` writes: checks on the destination, a hidden temporary folder beside it that
// becomes the destination by one rename at the very end (a killed run never leaves something at DST
// that looks like a model). Files inside it are written with AtomicFile (file_util.h).

#include <cstdint>
#include <string>

#include "status.h"

namespace quire::quantize {

// Refuses DST == SRC, DST inside SRC, SRC inside DST, a DST that is a file, a link to nothing or a
// mount point, a DST folder that is not empty (unless `force`), a parent folder that is missing or
// not writable, and a DST that another live run is writing (its staging folder beside DST). It
// clears what killed runs left beside DST (their staging folders; an old DST moved aside, put back
// when DST is missing).
Status check_destination(const std::string& src, const std::string& dst, bool force);

// DST as an absolute folder path without a trailing separator, links resolved.
std::string destination_folder(const std::string& dst);

// Free bytes on the file system that holds `dir`.
Result<int64_t> free_bytes(const std::string& dir);

class StagingFolder {
public:
    // Creates DST's hidden sibling ".NAME.quantizing-PID" (after check_destination, which clears stale
    // ones); refused, and nothing left, when another live run's sibling is there by then.
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
