#include "state_file.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "file_util.h"
#include "hash.h"

namespace quire {

namespace {
// Runs f(0 .. n-1) on up to 16 threads: the section checksums of a 1M-token state are ~9 GB of
// hashing, several seconds on one core.
void parallel_for(int64_t n, const std::function<void(int64_t)>& f) {
    const int64_t workers = std::min<int64_t>({n, 16, std::max<int64_t>(1, std::thread::hardware_concurrency())});
    if (workers <= 1) {
        for (int64_t i = 0; i < n; ++i) f(i);
        return;
    }
    std::atomic<int64_t> next{0};
    std::vector<std::thread> pool;
    for (int64_t w = 0; w < workers; ++w)
        pool.emplace_back([&] {
            for (int64_t i = next++; i < n; i = next++) f(i);
        });
    for (auto& t : pool) t.join();
}
}  // namespace

namespace {

constexpr char kMagic[8] = {'Q', 'U', 'I', 'R', 'E', 'S', 'T', 'F'};
constexpr int64_t kHeaderBytes = 64;
constexpr int64_t kEntryBytes = 48;
constexpr uint32_t kMaxSections = 1 << 16;

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

Status fail(ErrorCode code, const std::string& path, const std::string& what) {
    return Status(code, path + ": " + what);
}

}  // namespace

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
    }
    return "unknown";
}

StateHeader make_state_header(uint64_t model_fingerprint, uint32_t precision, uint32_t regime_rule,
                              const std::vector<int32_t>& tokens, int64_t sparse_from) {
    StateHeader h;
    h.model_fingerprint = model_fingerprint;
    h.token_count = static_cast<int64_t>(tokens.size());
    h.tokens_hash = hash_tokens(tokens);
    h.sparse_from = sparse_from;
    h.precision = precision;
    h.regime_rule = regime_rule;
    return h;
}

StateSection make_token_section(const std::vector<int32_t>& tokens) {
    StateSection tok{SectionKind::tokens, 0, SectionDType::i32, std::vector<uint8_t>(tokens.size() * 4)};
    std::memcpy(tok.bytes.data(), tokens.data(), tok.bytes.size());
    return tok;
}

Status write_state_file(const std::string& path, const StateHeader& h, const std::vector<StateSection>& sections) {
    const auto count = static_cast<int64_t>(sections.size());
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
    std::vector<uint64_t> sums(static_cast<size_t>(count));
    parallel_for(count, [&](int64_t i) {
        const StateSection& s = sections[static_cast<size_t>(i)];
        sums[static_cast<size_t>(i)] = hash64(s.bytes.data(), static_cast<int64_t>(s.bytes.size()), static_cast<uint64_t>(i));
    });
    int64_t offset = static_cast<int64_t>(head.size());
    for (int64_t i = 0; i < count; ++i) {
        const StateSection& s = sections[static_cast<size_t>(i)];
        uint8_t* e = &head[static_cast<size_t>(kHeaderBytes + i * kEntryBytes)];
        put<uint32_t>(e, static_cast<uint32_t>(s.kind));
        put<uint32_t>(e + 4, s.layer);
        put<uint32_t>(e + 8, static_cast<uint32_t>(s.dtype));
        put<uint64_t>(e + 16, static_cast<uint64_t>(offset));
        put<uint64_t>(e + 24, s.bytes.size());
        put<uint64_t>(e + 32, sums[static_cast<size_t>(i)]);
        offset = align64(offset + static_cast<int64_t>(s.bytes.size()));
    }
    put<uint64_t>(&head[static_cast<size_t>(table_end - 8)], hash64(head.data() + kHeaderBytes, count * kEntryBytes));

    auto file = AtomicFile::create(path);
    if (!file) return file.status();
    QUIRE_TRY(file->write(head.data(), static_cast<int64_t>(head.size())));
    static const uint8_t zeros[64] = {};
    for (size_t i = 0; i < sections.size(); ++i) {
        const auto& s = sections[i];
        QUIRE_TRY(file->write(s.bytes.data(), static_cast<int64_t>(s.bytes.size())));
        // No padding after the last section: the file ends with data, so any truncation is seen.
        const int64_t pad = align64(static_cast<int64_t>(s.bytes.size())) - static_cast<int64_t>(s.bytes.size());
        if (pad && i + 1 < sections.size()) QUIRE_TRY(file->write(zeros, pad));
    }
    return file->commit();
}

Result<LoadedState> read_state_file(const std::string& path, const StateExpectations& expect) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(ErrorCode::io_error, path, "cannot open");
    std::error_code ec;
    const auto file_size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    if (ec) return fail(ErrorCode::io_error, path, ec.message());

    uint8_t head[kHeaderBytes] = {};
    in.read(reinterpret_cast<char*>(head), std::min<int64_t>(file_size, kHeaderBytes));
    if (file_size < 8 || std::memcmp(head, kMagic, 8) != 0) return fail(ErrorCode::state_bad_magic, path, "not a Quire state file (bad magic)");
    if (file_size < kHeaderBytes) return fail(ErrorCode::state_truncated, path, "truncated inside the header");
    const auto version = get<uint32_t>(head + 8);
    if (version > kStateFormatVersion)
        return fail(ErrorCode::state_bad_version, path, "format version " + std::to_string(version) +
                                                            " is newer than this Quire reads (" + std::to_string(kStateFormatVersion) + ")");
    if (version != kStateFormatVersion) return fail(ErrorCode::state_bad_version, path, "unknown format version " + std::to_string(version));
    if (get<uint64_t>(head + 56) != hash64(head, 56)) return fail(ErrorCode::state_bad_checksum, path, "header checksum mismatch");

    LoadedState out;
    StateHeader& h = out.header;
    const auto count = get<uint32_t>(head + 12);
    h.model_fingerprint = get<uint64_t>(head + 16);
    h.token_count = get<int64_t>(head + 24);
    h.tokens_hash = get<uint64_t>(head + 32);
    h.sparse_from = get<int64_t>(head + 40);
    h.precision = get<uint32_t>(head + 48);
    h.regime_rule = get<uint32_t>(head + 52);
    if (count > kMaxSections || h.token_count < 0) return fail(ErrorCode::state_malformed, path, "implausible header values");

    const int64_t table_end = kHeaderBytes + int64_t(count) * kEntryBytes + 8;
    if (file_size < table_end) return fail(ErrorCode::state_truncated, path, "truncated inside the section table");
    std::vector<uint8_t> table(static_cast<size_t>(table_end - kHeaderBytes));
    in.read(reinterpret_cast<char*>(table.data()), static_cast<std::streamsize>(table.size()));
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

    int64_t last_end = table_end;
    for (uint32_t i = 0; i < count; ++i) {
        const uint8_t* e = &table[static_cast<size_t>(i) * kEntryBytes];
        StateSection s;
        s.kind = static_cast<SectionKind>(get<uint32_t>(e));
        s.layer = get<uint32_t>(e + 4);
        s.dtype = static_cast<SectionDType>(get<uint32_t>(e + 8));
        const auto offset = static_cast<int64_t>(get<uint64_t>(e + 16));
        const auto size = static_cast<int64_t>(get<uint64_t>(e + 24));
        const std::string label = std::string(section_kind_name(s.kind)) + " section (layer " + std::to_string(s.layer) + ")";
        if (offset < last_end || size < 0 || offset > file_size || size > file_size - offset)
            return fail(offset + size > file_size ? ErrorCode::state_truncated : ErrorCode::state_malformed, path,
                        label + (offset + size > file_size ? " runs past the end of the file (truncated)" : " has bad offsets"));
        s.bytes.resize(static_cast<size_t>(size));
        in.seekg(offset);
        in.read(reinterpret_cast<char*>(s.bytes.data()), size);
        if (in.gcount() != size) return fail(ErrorCode::state_truncated, path, label + " is truncated");
        last_end = offset + size;
        out.sections.push_back(std::move(s));
    }
    // Checksums, in parallel; the first bad section (in file order) is the one reported.
    std::vector<char> bad(count, 0);
    parallel_for(count, [&](int64_t i) {
        const StateSection& s = out.sections[static_cast<size_t>(i)];
        bad[static_cast<size_t>(i)] = hash64(s.bytes.data(), static_cast<int64_t>(s.bytes.size()), static_cast<uint64_t>(i)) !=
                                      get<uint64_t>(&table[static_cast<size_t>(i) * kEntryBytes] + 32);
    });
    for (uint32_t i = 0; i < count; ++i)
        if (bad[i]) {
            const StateSection& s = out.sections[i];
            return fail(ErrorCode::state_bad_checksum, path,
                        std::string(section_kind_name(s.kind)) + " section (layer " + std::to_string(s.layer) + ") checksum mismatch");
        }
    for (const auto& s : out.sections)
        if (s.kind == SectionKind::tokens) {
            std::vector<int32_t> ids(s.bytes.size() / 4);
            std::memcpy(ids.data(), s.bytes.data(), ids.size() * 4);
            if (static_cast<int64_t>(ids.size()) != h.token_count || hash_tokens(ids) != h.tokens_hash)
                return fail(ErrorCode::state_malformed, path, "token section disagrees with the header");
        }
    return out;
}

}  // namespace quire
