#pragma once
// An error as the OpenAI API reports it: an HTTP status and the body
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// so that clients written for that API show the message.

#include <nlohmann/json.hpp>

#include <string>

namespace quire::server {

struct ApiError {
    int status = 500;
    std::string type;     // "invalid_request_error", "authentication_error", ...
    std::string message;  // says what was wrong and, where it helps, what to do
    std::string param;    // the request field at fault, or empty
    std::string code;     // a machine-readable code, or empty

    nlohmann::json body() const;
};

ApiError badRequest(const std::string& message, const std::string& param = {});
ApiError unauthorized(const std::string& message);
ApiError notFound(const std::string& message, const std::string& param = {});
ApiError tooLarge(const std::string& message, const std::string& code);
ApiError queueFull(const std::string& message);
ApiError unavailable(const std::string& message, const std::string& code = "model_loading");
ApiError internalError(const std::string& message);

}  // namespace quire::server
