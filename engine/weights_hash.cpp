#include "weights_hash.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "file_util.h"
#include "hash.h"

namespace fs = std::filesystem;

namespace quire {

uint64_t content_hash(const uint8_t* data, int64_t size) {
    constexpr int64_t kBlock = int64_t{64} << 20;
    const int64_t blocks = (size + kBlock - 1) / kBlock;
    std::vector<uint64_t> sums(static_cast<size_t>(blocks));
    std::atomic<int64_t> next{0};
    auto work = [&] {
        for (int64_t b = next++; b < blocks; b = next++)
            sums[static_cast<size_t>(b)] = hash64(data + b * kBlock, std::min(kBlock, size - b * kBlock), static_cast<uint64_t>(b));
    };
    const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16);
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < std::min(threads, blocks); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return hash64(sums.data(), static_cast<int64_t>(sums.size() * sizeof(uint64_t)), static_cast<uint64_t>(size));
}

namespace {

fs::path cache_file() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "quire" / "weights-hash.tsv";
    if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "quire" / "weights-hash.tsv";
    return {};
}

// One line per file: the key (size, mtime in ns, absolute path) and the hash in hex.
std::string cache_key(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    std::error_code ec;
    const std::string abs = fs::absolute(path, ec).string();
    if (ec || abs.find('\t') != std::string::npos || abs.find('\n') != std::string::npos) return {};
    const long long mtime = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    return std::to_string(st.st_size) + "\t" + std::to_string(mtime) + "\t" + abs;
}

}  // namespace

uint64_t cached_content_hash(const std::string& path, const uint8_t* data, int64_t size) {
    const std::string key = cache_key(path);
    const fs::path file = cache_file();
    if (key.empty() || file.empty()) return content_hash(data, size);
    std::vector<std::string> lines;
    if (std::ifstream in(file); in)
        for (std::string line; std::getline(in, line) && lines.size() < 4096;) {
            const auto tab = line.rfind('\t');
            if (tab == std::string::npos) continue;
            if (line.compare(0, tab, key) == 0) return std::strtoull(line.c_str() + tab + 1, nullptr, 16);
            lines.push_back(line);
        }
    const uint64_t h = content_hash(data, size);
    // The cache only saves time: any failure to write it is ignored.
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    text += key + "\t" + hash_hex(h) + "\n";
    (void)write_file_atomically(file.string(), text);
    return h;
}

}  // namespace quire
