#pragma once
// A POST /v1/chat/completions body, parsed and checked into a typed request. Every field Quire
// uses is validated (type and range) and a bad one is refused with a 400 naming it; fields of the
// OpenAI API that Quire does not use are ignored, except those whose absence would change the
// answer's meaning (n > 1, tools), which are refused.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api_error.h"
#include "chat_template.h"

namespace quire::server {

struct ChatRequest {
    std::string model;
    std::vector<ChatMessage> messages;
    int64_t maxTokens = 512;
    bool maxTokensGiven = false;   // max_tokens was in the request (counts against the context)
    float temperature = 1.0f;
    float topP = 1.0f;
    std::vector<std::string> stop;
    std::optional<uint64_t> seed;  // none: a fresh random seed
    bool stream = false;
    bool includeUsage = false;     // stream_options.include_usage: a last chunk with the usage
    bool thinking = false;         // Quire's extension: let MiniCPM-SALA think before answering
    bool ignoreEos = false;        // extension (as llama.cpp's server): generate to max_tokens (benchmarks)
};

inline constexpr int64_t kMaxTokensLimit = 1 << 20;
inline constexpr size_t kMaxStopSequences = 4;
inline constexpr size_t kMaxStopBytes = 1024;  // each one; matching cost grows with the square of it

// Returns the request, or fills `error` (status 400) and returns nothing.
std::optional<ChatRequest> parseChatRequest(const std::string& body, ApiError& error);

}  // namespace quire::server
