#include "quantize/output_folder.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "process_alive.h"

namespace fs = std::filesystem;

namespace quire::quantize {

namespace {

// Absolute, normalised, without a trailing separator ("out/" is the folder "out"), links resolved.
fs::path resolved(const std::string& p) {
    std::error_code ec;
    fs::path r = fs::absolute(p, ec).lexically_normal();
    if (!r.has_filename() && r.has_parent_path()) r = r.parent_path();
    fs::path c = fs::weakly_canonical(r, ec);
    return ec ? r : c;
}

// True when `child` lies strictly inside `parent` (both resolved).
bool inside(const fs::path& parent, const fs::path& child) {
    auto pit = parent.begin();
    auto cit = child.begin();
    for (; pit != parent.end(); ++pit, ++cit) {
        if (pit->empty()) continue;  // a trailing separator
        if (cit == child.end() || *pit != *cit) return false;
    }
    return cit != child.end();
}

std::string errno_text(int e) { return e == ENOSPC ? "no space left on device" : std::strerror(e); }

void fsync_folder(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)::fsync(fd);
    ::close(fd);
}

// A staging folder's process is a live quantize run (a PID given since to `quire serve` is not).
bool quantize_alive(const std::string& pid) { return same_program_alive(pid) && process_has_argument(pid, "quantize"); }

std::string staging_prefix(const fs::path& d) { return "." + d.filename().string() + ".quantizing-"; }

// The process ID of another run writing DST now (its staging folder beside DST), or "".
std::string other_live_run(const fs::path& d) {
    std::error_code ec;
    const std::string prefix = staging_prefix(d), own = std::to_string(::getpid());
    for (const auto& e : fs::directory_iterator(d.parent_path(), ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind(prefix, 0) != 0) continue;
        const std::string pid = name.substr(prefix.size());
        if (pid != own && quantize_alive(pid)) return pid;
    }
    return {};
}

Status busy(const std::string& dst, const std::string& pid) {
    return Status(ErrorCode::invalid_argument, "another quantize run (process " + pid + ") is writing " + dst +
                                                   " now; wait for it to finish, or stop it, and run this again");
}

void clean_stale_runs(const fs::path& d) {
    std::error_code ec;
    // Left behind by a run that was killed outright (SIGKILL, power loss): its process is gone. A
    // staging folder is removed; an old DST it had moved aside (commit) is removed once DST is in
    // place, and put back when the kill came between the two renames and DST is missing.
    const std::string prefix = staging_prefix(d);
    const std::string aside_prefix = "." + d.filename().string() + ".replaced-";
    std::vector<fs::path> asides;
    for (const auto& e : fs::directory_iterator(d.parent_path(), ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind(prefix, 0) == 0 && !quantize_alive(name.substr(prefix.size()))) fs::remove_all(e.path(), ec);
        if (name.rfind(aside_prefix, 0) == 0 && !quantize_alive(name.substr(aside_prefix.size()))) asides.push_back(e.path());
    }
    // Which of several is the latest cannot be told: then all stay, for the user to choose.
    const bool dst_missing = !fs::exists(fs::symlink_status(d, ec));
    if (dst_missing && asides.size() == 1) (void)::rename(asides[0].c_str(), d.c_str());
    else if (!dst_missing)
        for (const fs::path& a : asides) fs::remove_all(a, ec);
}

}  // namespace

std::string destination_folder(const std::string& dst) { return resolved(dst).string(); }

Status check_destination(const std::string& src, const std::string& dst, bool force) {
    if (dst.empty()) return Status(ErrorCode::invalid_argument, "DST is empty: name the folder to create");
    const fs::path s = resolved(src), d = resolved(dst);
    if (s == d) return Status(ErrorCode::invalid_argument, "DST " + dst + " is the source folder itself");
    if (inside(s, d)) return Status(ErrorCode::invalid_argument, "DST " + dst + " lies inside the source folder " + src);
    if (inside(d, s)) return Status(ErrorCode::invalid_argument, "the source folder " + src + " lies inside DST " + dst);
    // Two runs into one DST would both work for the whole run and then replace each other.
    if (const std::string pid = other_live_run(d); !pid.empty()) return busy(dst, pid);
    clean_stale_runs(d);
    std::error_code ec;
    // Found now rather than when the finished model is moved into place: a link to nowhere, or a
    // mount point, which no rename can replace.
    fs::path given = fs::absolute(dst, ec).lexically_normal();
    if (!given.has_filename() && given.has_parent_path()) given = given.parent_path();  // "link/" names the link too
    if (fs::is_symlink(fs::symlink_status(given, ec)) && !fs::exists(given, ec))
        return Status(ErrorCode::invalid_argument, "DST " + dst + " is a symbolic link to " + fs::read_symlink(given, ec).string() +
                                                       ", which does not exist");
    const fs::file_status st = fs::status(d, ec);
    struct stat own {}, up {};
    if (fs::is_directory(st) && ::stat(d.c_str(), &own) == 0 && ::stat(d.parent_path().c_str(), &up) == 0 && own.st_dev != up.st_dev)
        return Status(ErrorCode::invalid_argument, "DST " + dst + " is a mount point, which cannot be replaced: name a new folder inside it");
    if (fs::exists(st)) {
        if (!fs::is_directory(st)) return Status(ErrorCode::invalid_argument, "DST " + dst + " exists and is not a folder");
        if (!fs::is_empty(d, ec) && !force)
            return Status(ErrorCode::invalid_argument, "DST " + dst + " exists and is not empty (--force replaces it)");
    }
    const fs::path parent = d.parent_path();
    if (!fs::is_directory(parent, ec)) return Status(ErrorCode::io_error, "the folder " + parent.string() + " for DST does not exist");
    if (::access(parent.c_str(), W_OK | X_OK) != 0)
        return Status(ErrorCode::io_error, "cannot write in " + parent.string() + ": " + errno_text(errno));
    return Status::ok();
}

Result<int64_t> free_bytes(const std::string& dir) {
    struct statvfs v {};
    if (::statvfs(dir.c_str(), &v) != 0) return Status(ErrorCode::io_error, dir + ": " + errno_text(errno));
    return static_cast<int64_t>(v.f_bavail) * static_cast<int64_t>(v.f_frsize);
}

Result<StagingFolder> StagingFolder::create(const std::string& dst) {
    const fs::path d = resolved(dst);
    const std::string prefix = staging_prefix(d);
    std::error_code ec;
    StagingFolder f;
    f.dst_ = d.string();
    f.path_ = (d.parent_path() / (prefix + std::to_string(::getpid()))).string();
    fs::remove_all(f.path_, ec);
    if (!fs::create_directory(f.path_, ec) || ec)
        return Status(ErrorCode::io_error, "cannot create " + f.path_ + ": " + ec.message());
    // Looked for again now that this run's folder exists: of two runs that started together, at
    // least one sees the other here, so both never go on (both may stop; neither loses anything).
    if (const std::string pid = other_live_run(d); !pid.empty()) return busy(dst, pid);  // ~StagingFolder removes ours
    return f;
}

StagingFolder::StagingFolder(StagingFolder&& o) noexcept : path_(std::move(o.path_)), dst_(std::move(o.dst_)), committed_(o.committed_) {
    o.committed_ = true;
}

StagingFolder::~StagingFolder() {
    if (committed_ || path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
}

Status StagingFolder::commit(bool replace) {
    fsync_folder(path_);
    std::error_code ec;
    const fs::path parent = fs::path(dst_).parent_path();
    std::string aside;
    if (fs::exists(dst_, ec) && !fs::is_empty(dst_, ec)) {
        if (!replace) return Status(ErrorCode::invalid_argument, "DST " + dst_ + " appeared while quantizing and is not empty");
        aside = (parent / ("." + fs::path(dst_).filename().string() + ".replaced-" + std::to_string(::getpid()))).string();
        if (::rename(dst_.c_str(), aside.c_str()) != 0)
            return Status(ErrorCode::io_error, "cannot move the old " + dst_ + " aside: " + errno_text(errno));
    }
    if (::rename(path_.c_str(), dst_.c_str()) != 0) {
        const int e = errno;
        if (!aside.empty()) (void)::rename(aside.c_str(), dst_.c_str());
        return Status(ErrorCode::io_error, "cannot rename " + path_ + " to " + dst_ + ": " + errno_text(e));
    }
    committed_ = true;
    fsync_folder(parent.string());
    if (!aside.empty()) fs::remove_all(aside, ec);
    return Status::ok();
}

}  // namespace quire::quantize
