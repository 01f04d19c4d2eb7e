#include "file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace quire {

Result<std::string> read_text_file(const std::string& path, int64_t max_bytes) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return Status(ErrorCode::io_error, path + ": " + ec.message());
    if (static_cast<int64_t>(size) > max_bytes)
        return Status(ErrorCode::io_error, path + ": file is " + std::to_string(size) + " bytes, more than the " +
                                               std::to_string(max_bytes) + " allowed");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(ErrorCode::io_error, path + ": cannot open");
    std::string data(size, '\0');
    in.read(data.data(), static_cast<std::streamsize>(size));
    if (in.gcount() != static_cast<std::streamsize>(size)) return Status(ErrorCode::io_error, path + ": short read");
    return data;
}

Result<AtomicFile> AtomicFile::create(const std::string& path) {
    AtomicFile f;
    f.path_ = path;
    f.tmp_ = path + ".tmp." + std::to_string(::getpid());
    f.fd_ = ::open(f.tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd_ < 0) return Status(ErrorCode::io_error, f.tmp_ + ": " + std::strerror(errno));
    return f;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept : path_(std::move(other.path_)), tmp_(std::move(other.tmp_)), fd_(other.fd_) {
    other.fd_ = -1;
    other.tmp_.clear();
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

Status AtomicFile::write_at(int64_t offset, const void* data, int64_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
        const ssize_t n = ::pwrite(fd_, p, static_cast<size_t>(std::min<int64_t>(size, 1 << 30)), offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Status(ErrorCode::io_error, tmp_ + ": write failed: " + std::strerror(errno));
        }
        p += n;
        size -= n;
        offset += n;
    }
    return Status::ok();
}

Status AtomicFile::resize(int64_t size) {
    if (::ftruncate(fd_, size) != 0) return Status(ErrorCode::io_error, tmp_ + ": cannot set the file size: " + std::strerror(errno));
    return Status::ok();
}

Status AtomicFile::write(const void* data, int64_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd_, p, static_cast<size_t>(std::min<int64_t>(size, 1 << 30)));
        if (n < 0) {
            if (errno == EINTR) continue;
            return Status(ErrorCode::io_error, tmp_ + ": write failed: " + std::strerror(errno));
        }
        p += n;
        size -= n;
    }
    return Status::ok();
}

Status AtomicFile::commit() {
    if (::fsync(fd_) != 0) return Status(ErrorCode::io_error, tmp_ + ": fsync failed: " + std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) return Status(ErrorCode::io_error, path_ + ": rename failed: " + std::strerror(errno));
    tmp_.clear();
    const std::string dir = std::filesystem::path(path_).parent_path().string();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);  // make the rename itself durable
        ::close(dfd);
    }
    return Status::ok();
}

Status write_file_atomically(const std::string& path, const std::string& bytes) {
    auto f = AtomicFile::create(path);
    if (!f) return f.status();
    QUIRE_TRY(f->write(bytes.data(), static_cast<int64_t>(bytes.size())));
    return f->commit();
}

}  // namespace quire
