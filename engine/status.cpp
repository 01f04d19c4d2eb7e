#include "status.h"

namespace quire {

const char* error_code_name(ErrorCode code) {
    switch (code) {
    case ErrorCode::ok: return "ok";
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::io_error: return "io_error";
    case ErrorCode::parse_error: return "parse_error";
    case ErrorCode::invalid_config: return "invalid_config";
    case ErrorCode::invalid_checkpoint: return "invalid_checkpoint";
    case ErrorCode::invalid_tokenizer: return "invalid_tokenizer";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::out_of_range: return "out_of_range";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::out_of_memory: return "out_of_memory";
    case ErrorCode::device_error: return "device_error";
    case ErrorCode::state_bad_magic: return "state_bad_magic";
    case ErrorCode::state_bad_version: return "state_bad_version";
    case ErrorCode::state_wrong_model: return "state_wrong_model";
    case ErrorCode::state_wrong_tokens: return "state_wrong_tokens";
    case ErrorCode::state_bad_checksum: return "state_bad_checksum";
    case ErrorCode::state_truncated: return "state_truncated";
    case ErrorCode::state_malformed: return "state_malformed";
    }
    return "unknown";
}

std::string Status::to_string() const {
    if (is_ok()) return "ok";
    return std::string(error_code_name(code_)) + ": " + message_;
}

}  // namespace quire
