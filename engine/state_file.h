#pragma once
// The state codec (docs/state-format.md): one place that encodes a sequence's state into a file and
// validates a file against the model before a byte of it reaches a backend. Backends only copy rows
// (StateRows); the codec owns the layout, the header, the section table, the checksums and every
// check. Sections stream through a bounded buffer in both directions: no full host copy of a state.
// Writes go to a temporary file that is synced and renamed, so a crash never damages the old file.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model_config.h"
#include "status.h"

namespace quire {

constexpr uint32_t kStateFormatVersion = 1;

enum class SectionKind : uint32_t {
    tokens = 1,           // int32 token ids
    lightning_state = 2,  // fp32 [heads, dk, dv] of one Lightning layer
    sparse_k = 3,         // [N, kv_heads, d] keys of one sparse layer
    sparse_v = 4,         // [N, kv_heads, d] values
    sparse_c1 = 5,        // [n1, kv_heads, d] compressed keys (C1 windows)
    sparse_c2 = 6,        // [n2, kv_heads, d] compressed keys (C2 windows)
    prefix = 7,           // a delta state: u64 [token count, token hash] of the prefix it extends
};
enum class SectionDType : uint32_t { i32 = 1, f32 = 2, bf16 = 3, u64 = 4 };

int64_t dtype_bytes(SectionDType t);
const char* section_kind_name(SectionKind kind);

struct StateHeader {
    uint64_t model_fingerprint = 0;
    int64_t token_count = 0;
    uint64_t tokens_hash = 0;
    int64_t sparse_from = -1;  // first position whose sparse-layer queries ran InfLLM-v2 (-1: none)
    uint32_t precision = 0;    // Precision
    uint32_t regime_rule = 0;  // RegimeRule
};

uint64_t hash_tokens(const std::vector<int32_t>& tokens);

// One section of a sequence's state for a model: rows of `width` elements, the section's first row
// being row `first_row` of the sequence's (a delta state holds only the rows past its prefix).
struct SectionSpec {
    SectionKind kind = SectionKind::tokens;
    uint32_t layer = 0;
    int64_t rows = 0;
    int64_t width = 0;
    int64_t first_row = 0;
};

// Every section (besides the tokens) a state of `tokens` tokens holds for this model, in file order:
// per layer, the Lightning state, or K, V, C1, C2. With prefix_tokens > 0, a delta state's: the
// cache rows past those of the first prefix_tokens tokens (the Lightning states stay whole).
std::vector<SectionSpec> state_layout(const ModelConfig& c, int64_t tokens, int64_t prefix_tokens = 0);

// The prefix a delta state extends: its first `tokens` token ids, whose hash_tokens is `hash`.
struct StatePrefix {
    int64_t tokens = 0;  // 0: a whole state, no prefix
    uint64_t hash = 0;
};

// The backend's side: copies of rows between its sequence and a host buffer. Cache sections (K, V,
// C1, C2) are exchanged in cache_dtype(); Lightning states always in f32. The codec converts between
// the file's dtype and the backend's.
class StateRows {
public:
    virtual ~StateRows() = default;
    virtual SectionDType cache_dtype() const = 0;
    // Save: rows [first, first + count) of section s into dst.
    virtual Status read_rows(const SectionSpec& s, int64_t first, int64_t count, void* dst) = 0;
    // Load: rows [first, first + count) of section s from src into the sequence.
    virtual Status write_rows(const SectionSpec& s, int64_t first, int64_t count, const void* src) = 0;
    // Load, optionally: a host buffer of `bytes` for the codec to read a chunk into and then pass to
    // write_rows, which takes it back (pinned memory a GPU uploads from without another copy, while
    // the codec reads the next chunk); nullptr: the codec uses its own. Called from several threads;
    // a buffer not passed to write_rows (a read failed) goes back through release_buffer.
    virtual void* acquire_buffer(int64_t /*bytes*/) { return nullptr; }
    virtual void release_buffer(void* /*buffer*/) {}
    // Load: waits until every write_rows has reached the sequence; after the last one.
    virtual Status finish() { return Status::ok(); }
};

// Writes the state of a sequence: header h, its tokens, and every section of state_layout read
// through `rows`. With prefix_tokens > 0 a delta: only what follows the sequence's first
// prefix_tokens tokens, and the prefix named by the hash of those tokens.
Status write_state(const std::string& path, const ModelConfig& c, const StateHeader& h, const std::vector<int32_t>& tokens,
                   StateRows& rows, int64_t prefix_tokens = 0);

// The size of the file write_state writes for a sequence of `tokens` tokens (a delta past
// prefix_tokens when > 0) with cache sections in cache_dtype: known before writing, so a caller can
// weigh it against a disk budget.
int64_t state_file_bytes(const ModelConfig& c, int64_t tokens, int64_t prefix_tokens, SectionDType cache_dtype);

struct StateExpectations {
    uint64_t model_fingerprint = 0;
    uint32_t precision = 0;
    uint32_t regime_rule = 0;
    const std::vector<int32_t>* tokens = nullptr;  // when set, the state must hold exactly these
};

// Random access to a state file's bytes (a file, or memory for the fuzzer).
class ByteSource {
public:
    virtual ~ByteSource() = default;
    virtual int64_t size() const = 0;
    // Reads exactly n bytes at offset (the caller has checked the range).
    virtual Status read_at(int64_t offset, void* dst, int64_t n) = 0;
};
// Opens a regular file (a FIFO, device or folder is refused without blocking).
Result<std::unique_ptr<ByteSource>> open_byte_source(const std::string& path);
std::unique_ptr<ByteSource> memory_byte_source(const uint8_t* data, int64_t size);

// A state file whose header, section table, tokens and every section's kind, layer, dtype and size
// have been checked against the model and the expectations. stream_into() then copies the sections
// into a backend's sequence, verifying each checksum as it goes; on any failure the sequence being
// filled must be discarded.
class StateReader {
public:
    static Result<StateReader> open(const std::string& path, const ModelConfig& c, const StateExpectations& expect);
    static Result<StateReader> open(std::unique_ptr<ByteSource> source, const std::string& label, const ModelConfig& c,
                                    const StateExpectations& expect);

    const StateHeader& header() const { return header_; }
    const std::vector<int32_t>& tokens() const { return tokens_; }
    // Set for a delta state: the prefix its sequence must start from.
    const StatePrefix& prefix() const { return prefix_; }
    Status stream_into(StateRows& rows);

private:
    struct Entry {
        SectionSpec spec;
        SectionDType dtype = SectionDType::f32;
        int64_t offset = 0, bytes = 0;
        uint64_t checksum = 0;
        uint32_t index = 0;  // position in the table (the checksum's seed)
    };
    std::unique_ptr<ByteSource> source_;
    std::string label_;
    StateHeader header_;
    std::vector<int32_t> tokens_;
    StatePrefix prefix_;
    std::vector<Entry> entries_;  // the row sections, in file order
};

}  // namespace quire
