#include "openai_client.h"

#include <httplib.h>

#include <chrono>

namespace quire::remote {

using nlohmann::json;

namespace {

struct Target {
    std::string origin;  // scheme://host[:port]
    std::string path;    // the base path, without a trailing slash
};

Result<Target> splitUrl(const std::string& url) {
    const size_t scheme = url.find("://");
    if (scheme == std::string::npos || (url.compare(0, scheme, "http") != 0 && url.compare(0, scheme, "https") != 0))
        return Status(ErrorCode::invalid_argument, "the server URL must start with http:// or https://, not '" + url + "'");
    const size_t slash = url.find('/', scheme + 3);
    Target t;
    t.origin = url.substr(0, slash);
    t.path = slash == std::string::npos ? "" : url.substr(slash);
    while (!t.path.empty() && t.path.back() == '/') t.path.pop_back();
    if (t.origin.size() <= scheme + 3) return Status(ErrorCode::invalid_argument, "the server URL has no host: '" + url + "'");
    return t;
}

std::unique_ptr<httplib::Client> makeClient(const Endpoint& e, const Target& t) {
    auto c = std::make_unique<httplib::Client>(t.origin);
    c->set_connection_timeout(e.connectTimeoutSeconds, 0);
    c->set_read_timeout(e.readTimeoutSeconds, 0);
    c->set_write_timeout(e.connectTimeoutSeconds * 6, 0);
    if (!e.apiKey.empty()) c->set_bearer_token_auth(e.apiKey);
    return c;
}

// What went wrong, in words, for a transport failure.
std::string transportError(const Endpoint& e, httplib::Error error) {
    switch (error) {
    case httplib::Error::Connection:
        return "cannot connect to the model server at " + e.url + " (is it running? is the address right?)";
    case httplib::Error::Read:
        return "the model server at " + e.url + " closed the connection or sent nothing for " +
               std::to_string(e.readTimeoutSeconds) + " s";
    case httplib::Error::Write: return "the connection to the model server at " + e.url + " broke while sending the question";
    case httplib::Error::ConnectionTimeout:
        return "the model server at " + e.url + " did not accept a connection within " + std::to_string(e.connectTimeoutSeconds) + " s";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification: return "the TLS connection to " + e.url + " failed (certificate or protocol)";
    default: return "the request to the model server at " + e.url + " failed: " + httplib::to_string(error);
    }
}

// The message of a non-200 answer, with a hint for the statuses a user can act on.
std::string statusError(const Endpoint& e, int status, const std::string& body) {
    std::string message;
    const json j = json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error")) {
        const json& err = j["error"];
        if (err.is_object() && err.contains("message") && err["message"].is_string()) message = err["message"].get<std::string>();
        else if (err.is_string()) message = err.get<std::string>();
    }
    if (message.empty()) message = body.substr(0, 200);
    std::string hint;
    if (status == 401 || status == 403)
        hint = e.apiKey.empty() ? " (the server wants an API key: quire config backend URL --api-key-file FILE)"
                                : " (the API key was refused: check the file given to quire config backend --api-key-file)";
    else if (status == 404) hint = " (is '" + e.model + "' a model of this server? quire config backend URL --model NAME)";
    else if (status == 429 || status == 503) hint = " (the server is busy or still loading; try again)";
    return "the model server answered " + std::to_string(status) + ": " + message + hint;
}

}  // namespace

Status checkEndpointUrl(const std::string& url) {
    auto t = splitUrl(url);
    return t ? Status::ok() : t.status();
}

Result<std::vector<std::string>> listModels(const Endpoint& endpoint) {
    auto target = splitUrl(endpoint.url);
    if (!target) return target.status();
    auto client = makeClient(endpoint, target.value());
    auto res = client->Get(target->path + "/models");
    if (!res) return Status(ErrorCode::io_error, transportError(endpoint, res.error()));
    if (res->status != 200) return Status(ErrorCode::io_error, statusError(endpoint, res->status, res->body));
    const json j = json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array())
        return Status(ErrorCode::io_error, endpoint.url + "/models did not answer with a model list");
    std::vector<std::string> ids;
    for (const json& m : j["data"])
        if (m.is_object() && m.contains("id") && m["id"].is_string()) ids.push_back(m["id"].get<std::string>());
    return ids;
}

Result<StreamedAnswer> streamChat(const Endpoint& endpoint, const json& request, const std::function<void(const std::string&)>& onText,
                                  const std::atomic<bool>* cancel, StreamedAnswer* partial) {
    auto target = splitUrl(endpoint.url);
    if (!target) return target.status();
    auto client = makeClient(endpoint, target.value());
    json body = request;
    body["model"] = endpoint.model;
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};

    StreamedAnswer answer;
    int status = 0;
    std::string errorBody, pending, streamError;
    bool done = false;
    const auto t0 = std::chrono::steady_clock::now();
    // One server-sent event: "data: {...}" lines; other fields (event:, id:, comments) are ignored.
    auto onEvent = [&](const std::string& event) {
        size_t at = 0;
        while (at < event.size()) {
            size_t end = event.find('\n', at);
            if (end == std::string::npos) end = event.size();
            std::string line = event.substr(at, end - at);
            at = end + 1;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.rfind("data:", 0) != 0) continue;
            std::string data = line.substr(5);
            if (!data.empty() && data[0] == ' ') data.erase(0, 1);
            if (data == "[DONE]") {
                done = true;
                continue;
            }
            const json chunk = json::parse(data, nullptr, false);
            if (chunk.is_discarded() || !chunk.is_object()) {
                streamError = "the model server sent a malformed event: " + data.substr(0, 120);
                return false;
            }
            if (chunk.contains("error")) {
                streamError = statusError(endpoint, 500, data);
                return false;
            }
            if (chunk.contains("choices") && chunk["choices"].is_array() && !chunk["choices"].empty()) {
                const json& choice = chunk["choices"][0];
                if (choice.contains("delta") && choice["delta"].is_object() && choice["delta"].contains("content") &&
                    choice["delta"]["content"].is_string()) {
                    const std::string piece = choice["delta"]["content"].get<std::string>();
                    if (!piece.empty()) {
                        if (answer.text.empty())
                            answer.firstTokenSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                        answer.text += piece;
                        if (onText) onText(piece);
                    }
                }
                if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
                    answer.finishReason = choice["finish_reason"].get<std::string>();
            }
            if (chunk.contains("usage") && chunk["usage"].is_object()) {
                const json& u = chunk["usage"];
                answer.promptTokens = u.value("prompt_tokens", int64_t{0});
                answer.completionTokens = u.value("completion_tokens", int64_t{0});
                if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
                    answer.cachedTokens = u["prompt_tokens_details"].value("cached_tokens", int64_t{0});
            }
        }
        return true;
    };

    httplib::Request req;
    req.method = "POST";
    req.path = target->path + "/chat/completions";
    req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", "text/event-stream");
    req.response_handler = [&](const httplib::Response& r) {
        status = r.status;
        return true;
    };
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
        if (cancel && cancel->load()) return false;
        if (status != 200) {
            if (errorBody.size() < 65536) errorBody.append(data, length);
            return true;
        }
        pending.append(data, length);
        // Events end with a blank line ("\n\n", or "\r\n\r\n" from some servers).
        while (true) {
            size_t end = pending.find("\n\n");
            size_t skip = 2;
            if (const size_t crlf = pending.find("\r\n\r\n"); crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
                end = crlf;
                skip = 4;
            }
            if (end == std::string::npos) break;
            const std::string event = pending.substr(0, end);
            pending.erase(0, end + skip);
            if (!onEvent(event)) return false;
        }
        return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool sent = client->send(req, res, error);
    if (partial) *partial = answer;
    if (cancel && cancel->load()) return Status(ErrorCode::cancelled, "cancelled");
    if (!streamError.empty()) return Status(ErrorCode::io_error, streamError);
    if (status != 0 && status != 200) return Status(ErrorCode::io_error, statusError(endpoint, status, errorBody));
    if (!sent) {
        if (!answer.text.empty() || status == 200)
            return Status(ErrorCode::io_error, "the model server at " + endpoint.url + " stopped in the middle of the answer (" +
                                                   transportError(endpoint, error) + ")");
        return Status(ErrorCode::io_error, transportError(endpoint, error));
    }
    if (!done)
        return Status(ErrorCode::io_error, "the model server at " + endpoint.url +
                                               " ended the answer without finishing it (no [DONE]); it may have stopped or crashed");
    return answer;
}

}  // namespace quire::remote
