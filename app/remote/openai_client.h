#pragma once
// A client for any OpenAI-compatible server (quire serve, SGLang, vLLM, llama.cpp's server):
// lists models and streams a chat completion over server-sent events. Every failure comes back as
// one message that says what happened (unreachable, refused key, server error, stream cut off).

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <string>

#include "status.h"

namespace quire::remote {

struct Endpoint {
    std::string url;     // base URL of the API, e.g. http://127.0.0.1:8080/v1
    std::string model;   // model id on that server
    std::string apiKey;  // sent as Authorization: Bearer KEY when not empty
    int connectTimeoutSeconds = 10;
    int readTimeoutSeconds = 600;  // the longest silence accepted (a long prefill on the server)
};

struct StreamedAnswer {
    std::string text;
    std::string finishReason;  // "stop", "length", or empty when the stream was cut off
    int64_t promptTokens = 0, completionTokens = 0, cachedTokens = 0;  // from usage, when sent
    double firstTokenSeconds = 0;
};

// Checks the URL's shape (http or https, a host); the message says what is wrong.
Status checkEndpointUrl(const std::string& url);

// GET {url}/models: the model ids.
Result<std::vector<std::string>> listModels(const Endpoint& endpoint);

// POST {url}/chat/completions with stream: true. `onText` gets each piece of the answer; `cancel`
// ends the request (ErrorCode::cancelled) and `partial` keeps what arrived before any failure.
Result<StreamedAnswer> streamChat(const Endpoint& endpoint, const nlohmann::json& request,
                                  const std::function<void(const std::string&)>& onText, const std::atomic<bool>* cancel,
                                  StreamedAnswer* partial);

}  // namespace quire::remote
