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

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    int64_t size_ = 0;
    std::string path_;
};

}  // namespace quire
