#include "state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "bf16.h"
#include "file_util.h"
#include "hash.h"
#include "sala_geometry.h"

namespace quire {

namespace {

constexpr char kMagic[8] = {'Q', 'U', 'I', 'R', 'E', 'S', 'T', 'F'};
constexpr int64_t kHeaderBytes = 64;
constexpr int64_t kEntryBytes = 48;
constexpr uint32_t kMaxSections = 1 << 16;
// Sections stream through a buffer of about this size (rows are never split).
constexpr int64_t kStreamBytes = int64_t{32} << 20;

template <typename T>
void put(uint8_t* p, T v) {
    std::memcpy(p, &v, sizeof v);
}
template <typename T>
T get(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
int64_t align64(int64_t n) { return (n + 63) & ~int64_t(63); }

Status fail(ErrorCode code, const std::string& path, const std::string& what) { return Status(code, path + ": " + what); }

std::string section_label(SectionKind kind, uint32_t layer) {
    return std::string(section_kind_name(kind)) + " section (layer " + std::to_string(layer) + ")";
}

bool is_cache_kind(SectionKind k) {
    return k == SectionKind::sparse_k || k == SectionKind::sparse_v || k == SectionKind::sparse_c1 || k == SectionKind::sparse_c2;
}

// Converts `count` elements between f32 and bf16 (or copies when the types agree).
void convert(const void* src, SectionDType from, void* dst, SectionDType to, int64_t count) {
    if (from == to) {
        std::memcpy(dst, src, static_cast<size_t>(count * dtype_bytes(from)));
    } else if (from == SectionDType::f32) {  // to bf16: round to nearest even, as the GPU holds it
        const auto* s = static_cast<const uint8_t*>(src);
        auto* d = static_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < count; ++i) d[i] = float_to_bf16(get<float>(s + 4 * i));
    } else {  // bf16 to f32: exact
        const auto* s = static_cast<const uint8_t*>(src);
        auto* d = static_cast<uint8_t*>(dst);
        for (int64_t i = 0; i < count; ++i) put<float>(d + 4 * i, bf16_to_float(get<uint16_t>(s + 2 * i)));
    }
}

class FileSource : public ByteSource {
public:
    FileSource(int fd, int64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
    ~FileSource() override { ::close(fd_); }
    int64_t size() const override { return size_; }
    Status read_at(int64_t offset, void* dst, int64_t n) override {
        auto* p = static_cast<uint8_t*>(dst);
        while (n > 0) {
            const ssize_t got = ::pread(fd_, p, static_cast<size_t>(std::min<int64_t>(n, 1 << 30)), offset);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) return Status(ErrorCode::io_error, path_ + ": read failed: " + std::strerror(errno));
            if (got == 0) return Status(ErrorCode::state_truncated, path_ + ": the file ended early (changed while reading?)");
            p += got;
            n -= got;
            offset += got;
        }
        return Status::ok();
    }

private:
    int fd_;
    int64_t size_;
    std::string path_;
};

class MemorySource : public ByteSource {
public:
    MemorySource(const uint8_t* data, int64_t size) : data_(data), size_(size) {}
    int64_t size() const override { return size_; }
    Status read_at(int64_t offset, void* dst, int64_t n) override {
        if (n > 0) std::memcpy(dst, data_ + offset, static_cast<size_t>(n));
        return Status::ok();
    }

private:
    const uint8_t* data_;
    int64_t size_;
};

// Runs work(i) for i = 0 .. n-1 on up to 8 threads, one section at a time per thread: hashing a
// 1M-token state (9 GB) takes seconds on one core, and sections are independent. Returns the
// failure of the lowest index (the first bad section in file order); after a failure no new index
// starts.
Status for_each_section(int64_t n, const std::function<Status(int64_t)>& work) {
    const int64_t workers = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 8);
    std::vector<Status> results(static_cast<size_t>(n));
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    auto run = [&] {
        for (int64_t i = next++; i < n && !failed.load(); i = next++) {
            results[static_cast<size_t>(i)] = work(i);
            if (!results[static_cast<size_t>(i)]) failed = true;
        }
    };
    std::vector<std::thread> pool;
    for (int64_t w = 1; w < std::min(workers, n); ++w) pool.emplace_back(run);
    run();
    for (auto& t : pool) t.join();
    for (const Status& r : results)
        if (!r) return r;
    return Status::ok();
}

}  // namespace

int64_t dtype_bytes(SectionDType t) { return t == SectionDType::bf16 ? 2 : t == SectionDType::u64 ? 8 : 4; }

uint64_t hash_tokens(const std::vector<int32_t>& tokens) {
    return hash64(tokens.data(), static_cast<int64_t>(tokens.size() * sizeof(int32_t)), 0x70CE);
}

const char* section_kind_name(SectionKind kind) {
    switch (kind) {
    case SectionKind::tokens: return "tokens";
    case SectionKind::lightning_state: return "lightning state";
    case SectionKind::sparse_k: return "sparse K";
    case SectionKind::sparse_v: return "sparse V";
    case SectionKind::sparse_c1: return "sparse C1";
    case SectionKind::sparse_c2: return "sparse C2";
    case SectionKind::prefix: return "prefix";
    }
    return "unknown";
}

std::vector<SectionSpec> state_layout(const ModelConfig& c, int64_t tokens, int64_t prefix_tokens) {
    const SparseGeometry g = SparseGeometry::from(c);
    const int64_t kv_width = c.num_key_value_heads * c.head_dim, p = prefix_tokens;
    std::vector<SectionSpec> out;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const auto layer = static_cast<uint32_t>(l);
        if (c.mixer_types[static_cast<size_t>(l)] == MixerType::lightning) {
            out.push_back({SectionKind::lightning_state, layer, c.lightning_nh, c.lightning_head_dim * c.lightning_head_dim, 0});
        } else {
            out.push_back({SectionKind::sparse_k, layer, tokens - p, kv_width, p});
            out.push_back({SectionKind::sparse_v, layer, tokens - p, kv_width, p});
            out.push_back({SectionKind::sparse_c1, layer, g.c1_entries(tokens) - g.c1_entries(p), kv_width, g.c1_entries(p)});
            out.push_back({SectionKind::sparse_c2, layer, g.c2_entries(tokens) - g.c2_entries(p), kv_width, g.c2_entries(p)});
        }
    }
    return out;
}

// --- Writing ------------------------------------------------------------------------------------

Status write_state(const std::string& path, const ModelConfig& c, const StateHeader& h, const std::vector<int32_t>& tokens,
                   StateRows& rows, int64_t prefix_tokens) {
    if (prefix_tokens < 0 || prefix_tokens > h.token_count)
        return Status(ErrorCode::invalid_argument, "a delta state's prefix must be part of its sequence");
    const std::vector<SectionSpec> layout = state_layout(c, h.token_count, prefix_tokens);
    const int64_t extra = prefix_tokens > 0 ? 1 : 0;                   // the prefix section
    const int64_t count = static_cast<int64_t>(layout.size()) + 1 + extra;  // + tokens
    const int64_t table_end = kHeaderBytes + count * kEntryBytes + 8;
    std::vector<uint8_t> head(static_cast<size_t>(align64(table_end)), 0);
    std::memcpy(head.data(), kMagic, 8);
    put<uint32_t>(&head[8], kStateFormatVersion);
    put<uint32_t>(&head[12], static_cast<uint32_t>(count));
    put<uint64_t>(&head[16], h.model_fingerprint);
    put<int64_t>(&head[24], h.token_count);
    put<uint64_t>(&head[32], h.tokens_hash);
    put<int64_t>(&head[40], h.sparse_from);
    put<uint32_t>(&head[48], h.precision);
    put<uint32_t>(&head[52], h.regime_rule);
    put<uint64_t>(&head[56], hash64(head.data(), 56));

    auto file = AtomicFile::create(path);
    if (!file) return file.status();
    QUIRE_TRY(file->write(head.data(), static_cast<int64_t>(head.size())));  // the table is filled in at the end
    int64_t offset = static_cast<int64_t>(head.size());
    static const uint8_t zeros[64] = {};
    auto entry = [&](int64_t i, SectionKind kind, uint32_t layer, SectionDType dtype, int64_t bytes, uint64_t sum) {
        uint8_t* e = &head[static_cast<size_t>(kHeaderBytes + i * kEntryBytes)];
        put<uint32_t>(e, static_cast<uint32_t>(kind));
        put<uint32_t>(e + 4, layer);
        put<uint32_t>(e + 8, static_cast<uint32_t>(dtype));
        put<uint64_t>(e + 16, static_cast<uint64_t>(offset));
        put<uint64_t>(e + 24, static_cast<uint64_t>(bytes));
        put<uint64_t>(e + 32, sum);
    };
    // Pads to the next section's 64-byte boundary; nothing follows the last section, so any
    // truncation of the file is seen.
    auto advance = [&](int64_t i, int64_t bytes) -> Status {
        const int64_t pad = align64(bytes) - bytes;
        if (pad && i + 1 < count) QUIRE_TRY(file->write(zeros, pad));
        offset += align64(bytes);
        return Status::ok();
    };

    const auto token_bytes = static_cast<int64_t>(tokens.size() * 4);
    QUIRE_TRY(file->write(tokens.data(), token_bytes));
    entry(0, SectionKind::tokens, 0, SectionDType::i32, token_bytes, hash64(tokens.data(), token_bytes, 0));
    QUIRE_TRY(advance(0, token_bytes));
    if (extra) {
        const uint64_t prefix[2] = {static_cast<uint64_t>(prefix_tokens),
                                    hash_tokens(std::vector<int32_t>(tokens.begin(), tokens.begin() + prefix_tokens))};
        QUIRE_TRY(file->write(prefix, 16));
        entry(1, SectionKind::prefix, 0, SectionDType::u64, 16, hash64(prefix, 16, 1));
        QUIRE_TRY(advance(1, 16));
    }

    // Every section's place is known from the layout: they are read from the backend (one at a
    // time), hashed and written at their offsets on several threads.
    const int64_t first = 1 + extra;  // table index of the first row section
    std::vector<int64_t> offsets(static_cast<size_t>(count));
    std::vector<SectionDType> dtypes(static_cast<size_t>(count));
    for (int64_t i = first; i < count; ++i) {
        const SectionSpec& s = layout[static_cast<size_t>(i - first)];
        dtypes[static_cast<size_t>(i)] = is_cache_kind(s.kind) ? rows.cache_dtype() : SectionDType::f32;
        offsets[static_cast<size_t>(i)] = offset;
        const int64_t bytes = s.rows * s.width * dtype_bytes(dtypes[static_cast<size_t>(i)]);
        offset += align64(bytes);
    }
    std::vector<uint64_t> sums(static_cast<size_t>(count));
    std::mutex backend;
    auto save_section = [&](int64_t j) -> Status {
        const int64_t i = j + first;
        const SectionSpec& s = layout[static_cast<size_t>(j)];
        const int64_t row_bytes = s.width * dtype_bytes(dtypes[static_cast<size_t>(i)]);
        const int64_t chunk_rows = std::max<int64_t>(1, kStreamBytes / std::max<int64_t>(row_bytes, 1));
        std::vector<uint8_t> buffer(static_cast<size_t>(std::min(chunk_rows, std::max<int64_t>(s.rows, 1)) * row_bytes));
        Hasher64 sum(static_cast<uint64_t>(i));
        for (int64_t r = 0; r < s.rows; r += chunk_rows) {
            const int64_t n = std::min(chunk_rows, s.rows - r);
            {
                std::lock_guard<std::mutex> lock(backend);
                QUIRE_TRY(rows.read_rows(s, r, n, buffer.data()));
            }
            sum.update(buffer.data(), n * row_bytes);
            QUIRE_TRY(file->write_at(offsets[static_cast<size_t>(i)] + r * row_bytes, buffer.data(), n * row_bytes));
        }
        sums[static_cast<size_t>(i)] = sum.final();
        return Status::ok();
    };
    QUIRE_TRY(for_each_section(count - first, save_section));
    // The file ends exactly where the last section does, so any truncation is seen on loading.
    if (!layout.empty()) {
        const SectionSpec& last = layout.back();
        QUIRE_TRY(file->resize(offsets.back() + last.rows * last.width * dtype_bytes(dtypes.back())));
    }
    for (int64_t i = first; i < count; ++i) {
        const SectionSpec& s = layout[static_cast<size_t>(i - first)];
        offset = offsets[static_cast<size_t>(i)];
        entry(i, s.kind, s.layer, dtypes[static_cast<size_t>(i)], s.rows * s.width * dtype_bytes(dtypes[static_cast<size_t>(i)]),
              sums[static_cast<size_t>(i)]);
    }
    put<uint64_t>(&head[static_cast<size_t>(table_end - 8)], hash64(head.data() + kHeaderBytes, count * kEntryBytes));
    QUIRE_TRY(file->write_at(0, head.data(), static_cast<int64_t>(head.size())));
    return file->commit();
}

int64_t state_file_bytes(const ModelConfig& c, int64_t tokens, int64_t prefix_tokens, SectionDType cache_dtype) {
    // write_state's order: header and table, tokens, the prefix (a delta), then the layout; each
    // padded to 64 bytes but the last.
    std::vector<int64_t> sizes{tokens * 4};
    if (prefix_tokens > 0) sizes.push_back(16);
    for (const SectionSpec& s : state_layout(c, tokens, prefix_tokens))
        sizes.push_back(s.rows * s.width * dtype_bytes(is_cache_kind(s.kind) ? cache_dtype : SectionDType::f32));
    int64_t total = align64(kHeaderBytes + static_cast<int64_t>(sizes.size()) * kEntryBytes + 8);
    for (size_t i = 0; i < sizes.size(); ++i) total += i + 1 < sizes.size() ? align64(sizes[i]) : sizes[i];
    return total;
}

// --- Reading ------------------------------------------------------------------------------------

Result<std::unique_ptr<ByteSource>> open_byte_source(const std::string& path) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below like any non-file.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return fail(ErrorCode::io_error, path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return fail(ErrorCode::io_error, path, "not a regular file");
    }
    return std::unique_ptr<ByteSource>(new FileSource(fd, static_cast<int64_t>(st.st_size), path));
}

std::unique_ptr<ByteSource> memory_byte_source(const uint8_t* data, int64_t size) {
    return std::make_unique<MemorySource>(data, size);
}

Result<StateReader> StateReader::open(const std::string& path, const ModelConfig& c, const StateExpectations& expect) {
    auto source = open_byte_source(path);
    if (!source) return source.status();
    return open(std::move(*source), path, c, expect);
}

Result<StateReader> StateReader::open(std::unique_ptr<ByteSource> source, const std::string& path, const ModelConfig& c,
                                      const StateExpectations& expect) {
    const int64_t file_size = source->size();
    uint8_t head[kHeaderBytes] = {};
    QUIRE_TRY(source->read_at(0, head, std::min<int64_t>(file_size, kHeaderBytes)));
    if (file_size < 8 || std::memcmp(head, kMagic, 8) != 0) return fail(ErrorCode::state_bad_magic, path, "not a Quire state file (bad magic)");
    if (file_size < kHeaderBytes) return fail(ErrorCode::state_truncated, path, "truncated inside the header");
    const auto version = get<uint32_t>(head + 8);
    if (version > kStateFormatVersion)
        return fail(ErrorCode::state_bad_version, path, "format version " + std::to_string(version) +
                                                            " is newer than this Quire reads (" + std::to_string(kStateFormatVersion) + ")");
    if (version != kStateFormatVersion) return fail(ErrorCode::state_bad_version, path, "unknown format version " + std::to_string(version));
    if (get<uint64_t>(head + 56) != hash64(head, 56)) return fail(ErrorCode::state_bad_checksum, path, "header checksum mismatch");

    StateReader r;
    r.label_ = path;
    StateHeader& h = r.header_;
    const auto count = get<uint32_t>(head + 12);
    h.model_fingerprint = get<uint64_t>(head + 16);
    h.token_count = get<int64_t>(head + 24);
    h.tokens_hash = get<uint64_t>(head + 32);
    h.sparse_from = get<int64_t>(head + 40);
    h.precision = get<uint32_t>(head + 48);
    h.regime_rule = get<uint32_t>(head + 52);
    // 2^40 tokens bounds every size computed from the count far below 2^63.
    if (count == 0 || count > kMaxSections || h.token_count < 0 || h.token_count > (int64_t{1} << 40) || h.sparse_from < -1 ||
        h.sparse_from >= std::max<int64_t>(h.token_count, 1))
        return fail(ErrorCode::state_malformed, path, "implausible header values");

    const int64_t table_end = kHeaderBytes + int64_t(count) * kEntryBytes + 8;
    if (file_size < table_end) return fail(ErrorCode::state_truncated, path, "truncated inside the section table");
    std::vector<uint8_t> table(static_cast<size_t>(table_end - kHeaderBytes));
    QUIRE_TRY(source->read_at(kHeaderBytes, table.data(), static_cast<int64_t>(table.size())));
    if (get<uint64_t>(&table[table.size() - 8]) != hash64(table.data(), int64_t(count) * kEntryBytes))
        return fail(ErrorCode::state_bad_checksum, path, "section table checksum mismatch");

    // Who and what the state is for, before reading the bulk.
    if (h.model_fingerprint != expect.model_fingerprint)
        return fail(ErrorCode::state_wrong_model, path, "state belongs to another model (fingerprint " +
                                                            hash_hex(h.model_fingerprint) + ", this model " +
                                                            hash_hex(expect.model_fingerprint) + ")");
    if (h.precision != expect.precision || h.regime_rule != expect.regime_rule)
        return fail(ErrorCode::state_wrong_model, path, "state was computed with other engine settings (precision or regime rule)");
    if (expect.tokens && (h.token_count != static_cast<int64_t>(expect.tokens->size()) || h.tokens_hash != hash_tokens(*expect.tokens)))
        return fail(ErrorCode::state_wrong_tokens, path, "state holds " + std::to_string(h.token_count) +
                                                             " tokens that differ from the expected sequence");

    // A delta state names its prefix in a section of its own; the layout depends on it.
    int64_t prefix_entry = -1;
    for (uint32_t i = 0; i < count; ++i)
        if (get<uint32_t>(&table[static_cast<size_t>(i) * kEntryBytes]) == static_cast<uint32_t>(SectionKind::prefix)) {
            if (prefix_entry >= 0) return fail(ErrorCode::state_malformed, path, "more than one prefix section");
            prefix_entry = i;
        }
    if (prefix_entry >= 0) {
        const uint8_t* e = &table[static_cast<size_t>(prefix_entry) * kEntryBytes];
        const auto offset = static_cast<int64_t>(get<uint64_t>(e + 16)), bytes = static_cast<int64_t>(get<uint64_t>(e + 24));
        if (static_cast<SectionDType>(get<uint32_t>(e + 8)) != SectionDType::u64 || bytes != 16 || offset < table_end ||
            offset > file_size - 16)
            return fail(ErrorCode::state_malformed, path, "the prefix section is malformed");
        uint64_t prefix[2];
        QUIRE_TRY(source->read_at(offset, prefix, 16));
        if (hash64(prefix, 16, static_cast<uint64_t>(prefix_entry)) != get<uint64_t>(e + 32))
            return fail(ErrorCode::state_bad_checksum, path, section_label(SectionKind::prefix, 0) + " checksum mismatch");
        if (prefix[0] == 0 || prefix[0] > static_cast<uint64_t>(h.token_count))
            return fail(ErrorCode::state_malformed, path, "the prefix is not part of the state's sequence");
        r.prefix_ = {static_cast<int64_t>(prefix[0]), prefix[1]};
    }

    // Every entry against the file and against the model's layout: kind, layer, dtype, size; each
    // section exactly once.
    const std::vector<SectionSpec> layout = state_layout(c, h.token_count, r.prefix_.tokens);
    std::vector<int> seen(layout.size(), 0);
    int64_t last_end = table_end, token_entry = -1;
    Entry te;
    for (uint32_t i = 0; i < count; ++i) {
        const uint8_t* e = &table[static_cast<size_t>(i) * kEntryBytes];
        Entry en;
        en.index = i;
        en.spec.kind = static_cast<SectionKind>(get<uint32_t>(e));
        en.spec.layer = get<uint32_t>(e + 4);
        en.dtype = static_cast<SectionDType>(get<uint32_t>(e + 8));
        en.offset = static_cast<int64_t>(get<uint64_t>(e + 16));
        en.bytes = static_cast<int64_t>(get<uint64_t>(e + 24));
        en.checksum = get<uint64_t>(e + 32);
        const std::string label = section_label(en.spec.kind, en.spec.layer);
        if (en.offset < last_end || en.bytes < 0 || en.offset > file_size || en.bytes > file_size - en.offset)
            return fail(en.offset >= last_end && en.bytes >= 0 && en.offset + en.bytes > file_size ? ErrorCode::state_truncated : ErrorCode::state_malformed,
                        path, label + (en.offset >= last_end && en.bytes >= 0 ? " runs past the end of the file (truncated)" : " has bad offsets"));
        last_end = en.offset + en.bytes;
        if (en.spec.kind == SectionKind::tokens) {
            if (token_entry >= 0) return fail(ErrorCode::state_malformed, path, "more than one token section");
            if (en.dtype != SectionDType::i32 || en.bytes != h.token_count * 4)
                return fail(ErrorCode::state_malformed, path, "the token section does not hold the header's " +
                                                                  std::to_string(h.token_count) + " int32 ids");
            token_entry = i;
            te = en;
            continue;
        }
        if (en.spec.kind == SectionKind::prefix) continue;  // read above
        size_t match = layout.size();
        for (size_t j = 0; j < layout.size(); ++j)
            if (layout[j].kind == en.spec.kind && layout[j].layer == en.spec.layer) match = j;
        if (match == layout.size())
            return fail(ErrorCode::state_malformed, path, label + " does not exist in this model (unknown kind, or a layer of another type or number)");
        if (seen[match]++) return fail(ErrorCode::state_malformed, path, label + " appears twice");
        en.spec = layout[match];
        const bool dtype_ok = en.spec.kind == SectionKind::lightning_state ? en.dtype == SectionDType::f32
                                                                           : en.dtype == SectionDType::f32 || en.dtype == SectionDType::bf16;
        if (!dtype_ok) return fail(ErrorCode::state_malformed, path, label + " has an element type this section cannot have");
        const int64_t want = en.spec.rows * en.spec.width * dtype_bytes(en.dtype);
        if (en.bytes != want)
            return fail(ErrorCode::state_malformed, path, label + " has " + std::to_string(en.bytes) + " bytes; " +
                                                              std::to_string(en.spec.rows) + " rows of this model need " + std::to_string(want));
        r.entries_.push_back(en);
    }
    if (token_entry < 0) return fail(ErrorCode::state_malformed, path, "no token section");
    // The writer ends the file exactly at the last section (write_state), so bytes after it were
    // appended by something else: the file is not what Quire wrote.
    if (last_end != file_size)
        return fail(ErrorCode::state_malformed, path, std::to_string(file_size - last_end) +
                                                          (file_size - last_end == 1 ? " byte follows" : " bytes follow") +
                                                          " the last section (the file was appended to)");
    for (size_t j = 0; j < layout.size(); ++j)
        if (!seen[j]) return fail(ErrorCode::state_malformed, path, "layer " + std::to_string(layout[j].layer) + " needs a " +
                                                                       section_kind_name(layout[j].kind) + " section");

    // The tokens, checked against their checksum and the header.
    r.tokens_.resize(static_cast<size_t>(h.token_count));
    QUIRE_TRY(source->read_at(te.offset, r.tokens_.data(), te.bytes));
    if (hash64(r.tokens_.data(), te.bytes, te.index) != te.checksum)
        return fail(ErrorCode::state_bad_checksum, path, section_label(SectionKind::tokens, 0) + " checksum mismatch");
    if (hash_tokens(r.tokens_) != h.tokens_hash) return fail(ErrorCode::state_malformed, path, "token section disagrees with the header");
    if (r.prefix_.tokens > 0 &&
        hash_tokens(std::vector<int32_t>(r.tokens_.begin(), r.tokens_.begin() + r.prefix_.tokens)) != r.prefix_.hash)
        return fail(ErrorCode::state_malformed, path, "the state's tokens do not start with the prefix it names");
    r.source_ = std::move(source);
    return r;
}

Status StateReader::stream_into(StateRows& rows) {
    // Sections on several threads (reading and hashing are the cost); the backend's copies one at a time.
    std::mutex backend;
    const Status streamed = for_each_section(static_cast<int64_t>(entries_.size()), [&](int64_t e) -> Status {
        const Entry& en = entries_[static_cast<size_t>(e)];
        const SectionSpec& s = en.spec;
        const SectionDType want = is_cache_kind(s.kind) ? rows.cache_dtype() : SectionDType::f32;
        const int64_t in_row = s.width * dtype_bytes(en.dtype), out_row = s.width * dtype_bytes(want);
        const int64_t chunk_rows = std::max<int64_t>(1, kStreamBytes / std::max<int64_t>(in_row, 1));
        const auto buffer_rows = static_cast<size_t>(std::min(chunk_rows, std::max<int64_t>(s.rows, 1)));
        std::vector<uint8_t> in, out;
        if (want != en.dtype) out.resize(buffer_rows * static_cast<size_t>(out_row));
        Hasher64 sum(en.index);
        for (int64_t r = 0; r < s.rows; r += chunk_rows) {
            const int64_t n = std::min(chunk_rows, s.rows - r);
            // Straight into the backend's buffer when the bytes go as they are (rows.acquire_buffer).
            auto* direct = want == en.dtype ? static_cast<uint8_t*>(rows.acquire_buffer(n * in_row)) : nullptr;
            if (!direct && in.empty()) in.resize(buffer_rows * static_cast<size_t>(in_row));
            uint8_t* chunk = direct ? direct : in.data();
            if (Status st = source_->read_at(en.offset + r * in_row, chunk, n * in_row); !st) {
                if (direct) rows.release_buffer(direct);
                return st;
            }
            sum.update(chunk, n * in_row);
            const uint8_t* ready = chunk;
            if (want != en.dtype) {
                convert(chunk, en.dtype, out.data(), want, n * s.width);
                ready = out.data();
            }
            std::lock_guard<std::mutex> lock(backend);
            QUIRE_TRY(rows.write_rows(s, r, n, ready));
        }
        if (sum.final() != en.checksum)
            return fail(ErrorCode::state_bad_checksum, label_, section_label(s.kind, s.layer) + " checksum mismatch");
        return Status::ok();
    });
    const Status finished = rows.finish();  // also after a failure: nothing may still be in flight
    return streamed ? finished : streamed;
}

}  // namespace quire
