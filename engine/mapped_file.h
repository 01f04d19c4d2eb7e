#pragma once
// A read-only memory mapping of a whole file. Weights are read in place from the page cache.

#include <cstdint>
#include <memory>
#include <string>

#include "status.h"

namespace quire {

class MappedFile {
public:
    static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    int64_t size() const { return size_; }
    const std::string& path() const { return path_; }
    // Drops this process's resident pages of the mapping (they stay in the page cache, and a later
    // read faults them back in): once a GPU holds the weights, the 18 GB of a 9B model's shards no
    // longer count against the process.
    void release_resident_pages() const;

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    int64_t size_ = 0;
    std::string path_;
};

}  // namespace quire
