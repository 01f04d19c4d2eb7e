#include "chat_request.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace quire::server {

using nlohmann::json;

namespace {

// Thrown inside the parser only; turned into the 400 by parseChatRequest.
struct FieldError {
    std::string message, param;
};

[[noreturn]] void refuse(const std::string& param, const std::string& message) { throw FieldError{param + ": " + message, param}; }

double number(const json& v, const std::string& name, double lo, double hi) {
    if (!v.is_number()) refuse(name, "must be a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) refuse(name, "must be between " + json(lo).dump() + " and " + json(hi).dump() + ", not " + v.dump());
    return d;
}

int64_t integer(const json& v, const std::string& name, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) refuse(name, "must be an integer, not " + v.dump());
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) refuse(name, "must be at most " + std::to_string(hi));
    const int64_t n = v.get<int64_t>();
    if (n < lo || n > hi) refuse(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", not " + v.dump());
    return n;
}

ChatRole role(const json& v, const std::string& name) {
    if (!v.is_string()) refuse(name, "must be a string");
    const std::string r = v.get<std::string>();
    if (r == "system" || r == "developer") return ChatRole::system;
    if (r == "user") return ChatRole::user;
    if (r == "assistant") return ChatRole::assistant;
    refuse(name, "'" + r + "' is not supported (system, developer, user or assistant; Quire has no tools)");
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts joined.
std::string content(const json& v, const std::string& name) {
    if (v.is_string()) return v.get<std::string>();
    if (!v.is_array()) refuse(name, "must be a string or an array of text parts");
    std::string text;
    for (size_t i = 0; i < v.size(); ++i) {
        const json& part = v[i];
        const std::string p = name + "[" + std::to_string(i) + "]";
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
            refuse(p, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
        text += part["text"].get<std::string>();
    }
    return text;
}

ChatRequest parse(const json& j) {
    if (!j.is_object()) refuse("body", "must be a JSON object");
    ChatRequest r;
    if (!j.contains("model") || !j["model"].is_string() || j["model"].get<std::string>().empty())
        refuse("model", "is required: a model id from GET /v1/models");
    r.model = j["model"].get<std::string>();
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
        refuse("messages", "is required: a non-empty array of messages");
    const json& ms = j["messages"];
    for (size_t i = 0; i < ms.size(); ++i) {
        const std::string name = "messages[" + std::to_string(i) + "]";
        if (!ms[i].is_object()) refuse(name, "must be an object with role and content");
        if (!ms[i].contains("role")) refuse(name + ".role", "is required");
        if (!ms[i].contains("content") || ms[i]["content"].is_null()) refuse(name + ".content", "is required");
        r.messages.push_back({role(ms[i]["role"], name + ".role"), content(ms[i]["content"], name + ".content")});
    }
    if (r.messages.back().role == ChatRole::assistant)
        refuse("messages", "the last message must not be the assistant's (continuing an answer is not supported)");
    for (const char* key : {"max_completion_tokens", "max_tokens"})
        if (j.contains(key) && !j[key].is_null()) {
            r.maxTokens = integer(j[key], key, 1, kMaxTokensLimit);
            r.maxTokensGiven = true;
            break;
        }
    if (j.contains("temperature") && !j["temperature"].is_null()) r.temperature = static_cast<float>(number(j["temperature"], "temperature", 0, 2));
    if (j.contains("top_p") && !j["top_p"].is_null()) {
        r.topP = static_cast<float>(number(j["top_p"], "top_p", 0, 1));
        if (r.topP <= 0) refuse("top_p", "must be greater than 0");
    }
    if (j.contains("stop") && !j["stop"].is_null()) {
        const json& s = j["stop"];
        if (s.is_string()) r.stop.push_back(s.get<std::string>());
        else if (s.is_array()) {
            if (s.size() > kMaxStopSequences) refuse("stop", "at most " + std::to_string(kMaxStopSequences) + " sequences");
            for (const json& e : s) {
                if (!e.is_string()) refuse("stop", "must be a string or an array of strings");
                r.stop.push_back(e.get<std::string>());
            }
        } else refuse("stop", "must be a string or an array of strings");
        for (const std::string& e : r.stop)
            if (e.empty()) refuse("stop", "an empty stop sequence would stop before the first character");
            else if (e.size() > kMaxStopBytes) refuse("stop", "a stop sequence may have at most " + std::to_string(kMaxStopBytes) + " bytes");
    }
    if (j.contains("seed") && !j["seed"].is_null()) {
        if (!j["seed"].is_number_integer()) refuse("seed", "must be an integer");
        r.seed = j["seed"].is_number_unsigned() ? j["seed"].get<uint64_t>() : static_cast<uint64_t>(j["seed"].get<int64_t>());
    }
    if (j.contains("stream") && !j["stream"].is_null()) {
        if (!j["stream"].is_boolean()) refuse("stream", "must be true or false");
        r.stream = j["stream"].get<bool>();
    }
    if (j.contains("stream_options") && !j["stream_options"].is_null()) {
        const json& o = j["stream_options"];
        if (!o.is_object()) refuse("stream_options", "must be an object");
        if (o.contains("include_usage")) {
            if (!o["include_usage"].is_boolean()) refuse("stream_options.include_usage", "must be true or false");
            r.includeUsage = o["include_usage"].get<bool>();
        }
    }
    if (j.contains("n") && !j["n"].is_null() && integer(j["n"], "n", 1, 1) != 1) refuse("n", "only 1 is supported");
    for (const char* key : {"tools", "functions"})
        if (j.contains(key) && !j[key].is_null() && !(j[key].is_array() && j[key].empty())) refuse(key, "tool calls are not supported");
    for (auto [key, field] : {std::pair{"thinking", &r.thinking}, std::pair{"ignore_eos", &r.ignoreEos}})
        if (j.contains(key) && !j[key].is_null()) {
            if (!j[key].is_boolean()) refuse(key, "must be true or false");
            *field = j[key].get<bool>();
        }
    return r;
}

}  // namespace

std::optional<ChatRequest> parseChatRequest(const std::string& body, ApiError& error) {
    const json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) {
        error = badRequest("the request body is not valid JSON");
        return std::nullopt;
    }
    try {
        return parse(j);
    } catch (const FieldError& e) {
        error = badRequest(e.message, e.param);
    } catch (const json::exception& e) {
        error = badRequest(std::string("the request body has an unexpected shape: ") + e.what());
    }
    return std::nullopt;
}

}  // namespace quire::server
