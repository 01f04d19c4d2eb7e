#pragma once
// The prefix-state file (docs/state-format.md): a checked header, a section table and checksummed
// sections. Backends turn their sequence state into sections and back; this file only knows bytes.
// Writes go to a temporary file that is synced and renamed, so a crash never damages the old file.

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace quire {

constexpr uint32_t kStateFormatVersion = 1;

enum class SectionKind : uint32_t {
    tokens = 1,           // int32 token ids
    lightning_state = 2,  // fp32 [heads, dk, dv] of one Lightning layer
    sparse_k = 3,         // [N, kv_heads, d] keys of one sparse layer
    sparse_v = 4,         // [N, kv_heads, d] values
    sparse_c1 = 5,        // [n1, kv_heads, d] compressed keys (kernel 32, stride 16)
    sparse_c2 = 6,        // [n2, kv_heads, d] compressed keys (kernel 128, stride 64)
};
enum class SectionDType : uint32_t { i32 = 1, f32 = 2, bf16 = 3 };

struct StateHeader {
    uint64_t model_fingerprint = 0;
    int64_t token_count = 0;
    uint64_t tokens_hash = 0;
    int64_t sparse_from = -1;  // first position whose sparse-layer queries ran InfLLM-v2 (-1: none)
    uint32_t precision = 0;    // Precision
    uint32_t regime_rule = 0;  // RegimeRule
};

struct StateSection {
    SectionKind kind = SectionKind::tokens;
    uint32_t layer = 0;
    SectionDType dtype = SectionDType::f32;
    std::vector<uint8_t> bytes;
};

uint64_t hash_tokens(const std::vector<int32_t>& tokens);
const char* section_kind_name(SectionKind kind);

// What every backend writes and expects: the header for a sequence of `tokens` computed by this
// model (fingerprint) with these settings, and the token section.
StateHeader make_state_header(uint64_t model_fingerprint, uint32_t precision, uint32_t regime_rule,
                              const std::vector<int32_t>& tokens, int64_t sparse_from);
StateSection make_token_section(const std::vector<int32_t>& tokens);

Status write_state_file(const std::string& path, const StateHeader& header, const std::vector<StateSection>& sections);

struct StateExpectations {
    uint64_t model_fingerprint = 0;
    uint32_t precision = 0;
    uint32_t regime_rule = 0;
    const std::vector<int32_t>* tokens = nullptr;  // when set, the state must hold exactly these
};

struct LoadedState {
    StateHeader header;
    std::vector<StateSection> sections;
};

// Validates everything before returning: structure, checksums, model, settings, tokens.
Result<LoadedState> read_state_file(const std::string& path, const StateExpectations& expect);

}  // namespace quire
