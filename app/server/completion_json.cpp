#include "completion_json.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace quire::server {

using nlohmann::json;

CompletionIds newCompletionIds(const std::string& model) {
    static std::atomic<uint64_t> counter{0};
    static const uint64_t salt = std::random_device{}();
    char id[64];
    std::snprintf(id, sizeof id, "chatcmpl-%016llx%08llx", static_cast<unsigned long long>(salt),
                  static_cast<unsigned long long>(++counter));
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return {id, std::chrono::duration_cast<std::chrono::seconds>(now).count(), model};
}

json completionObject(const CompletionIds& ids, const json& finished) {
    return {{"id", ids.id},
            {"object", "chat.completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices",
             json::array({{{"index", 0},
                           {"message", {{"role", "assistant"}, {"content", finished["text"]}}},
                           {"logprobs", nullptr},
                           {"finish_reason", finished["finish_reason"]}}})},
            {"usage", finished["usage"]},
            {"quire", finished["quire"]}};
}

json completionChunk(const CompletionIds& ids, const json& delta, const json& finishReason) {
    return {{"id", ids.id},
            {"object", "chat.completion.chunk"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finishReason}}})}};
}

json usageChunk(const CompletionIds& ids, const json& finished) {
    return {{"id", ids.id},           {"object", "chat.completion.chunk"}, {"created", ids.created}, {"model", ids.model},
            {"choices", json::array()}, {"usage", finished["usage"]},        {"quire", finished["quire"]}};
}

// Invalid UTF-8 (which a model can produce) is replaced rather than aborting the response.
std::string jsonText(const json& data) { return data.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string sseEvent(const json& data) { return "data: " + jsonText(data) + "\n\n"; }
std::string sseDone() { return "data: [DONE]\n\n"; }

}  // namespace quire::server
