#pragma once
// The response shapes of POST /v1/chat/completions as the OpenAI API writes them: one
// `chat.completion` object, or a stream of server-sent events, each `data: {chunk}\n\n` with a
// `chat.completion.chunk`, ending with `data: [DONE]\n\n`.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace quire::server {

struct CompletionIds {
    std::string id;       // "chatcmpl-..."
    int64_t created = 0;  // Unix seconds
    std::string model;
};

CompletionIds newCompletionIds(const std::string& model);

// finished: the worker's finished event info (finish_reason, text, usage, quire).
nlohmann::json completionObject(const CompletionIds& ids, const nlohmann::json& finished);

// A chunk with `delta` (e.g. {"role": "assistant", "content": ""} or {"content": "..."}) and a
// finish_reason (null until the last one).
nlohmann::json completionChunk(const CompletionIds& ids, const nlohmann::json& delta, const nlohmann::json& finishReason);
// The chunk that stream_options.include_usage asks for: no choices, the usage.
nlohmann::json usageChunk(const CompletionIds& ids, const nlohmann::json& finished);

// JSON text with any invalid UTF-8 replaced (U+FFFD).
std::string jsonText(const nlohmann::json& data);
std::string sseEvent(const nlohmann::json& data);
std::string sseDone();

}  // namespace quire::server
