#include "api_error.h"

namespace quire::server {

nlohmann::json ApiError::body() const {
    nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return {{"error", e}};
}

ApiError badRequest(const std::string& message, const std::string& param) {
    return {400, "invalid_request_error", message, param, {}};
}
ApiError unauthorized(const std::string& message) { return {401, "authentication_error", message, {}, "invalid_api_key"}; }
ApiError notFound(const std::string& message, const std::string& param) {
    return {404, "invalid_request_error", message, param, "model_not_found"};
}
ApiError tooLarge(const std::string& message, const std::string& code) { return {413, "invalid_request_error", message, {}, code}; }
ApiError queueFull(const std::string& message) { return {429, "rate_limit_error", message, {}, "queue_full"}; }
ApiError unavailable(const std::string& message, const std::string& code) { return {503, "server_error", message, {}, code}; }
ApiError internalError(const std::string& message) { return {500, "server_error", message, {}, {}}; }

}  // namespace quire::server
