#pragma once
// Status and Result: how every engine function reports failure. No exceptions cross the engine
// boundary; a Status carries a code (for callers that branch) and a message (for people).

#include <string>
#include <utility>
#include <variant>

namespace quire {

enum class ErrorCode {
    ok = 0,
    invalid_argument,
    io_error,
    parse_error,
    invalid_config,
    invalid_checkpoint,
    invalid_tokenizer,
    unsupported,
    out_of_range,
    cancelled,
    out_of_memory,
    device_error,
    // State-file errors: each corruption has its own code so callers can say what happened.
    state_bad_magic,
    state_bad_version,
    state_wrong_model,
    state_wrong_tokens,
    state_bad_checksum,
    state_truncated,
    state_malformed,
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

    static Status ok() { return {}; }
    bool is_ok() const { return code_ == ErrorCode::ok; }
    explicit operator bool() const { return is_ok(); }
    ErrorCode code() const { return code_; }
    const std::string& message() const { return message_; }
    // "invalid_checkpoint: <message>"
    std::string to_string() const;

private:
    ErrorCode code_ = ErrorCode::ok;
    std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : data_(std::move(value)) {}
    Result(Status status) : data_(std::move(status)) {}

    bool is_ok() const { return std::holds_alternative<T>(data_); }
    explicit operator bool() const { return is_ok(); }
    T& value() & { return std::get<T>(data_); }
    const T& value() const& { return std::get<T>(data_); }
    T&& value() && { return std::get<T>(std::move(data_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() { return value(); }
    Status status() const { return is_ok() ? Status::ok() : std::get<Status>(data_); }

private:
    std::variant<T, Status> data_;
};

}  // namespace quire

// Early return for Status-returning expressions inside functions that return Status or Result.
// The variable is named after the line, so a QUIRE_TRY inside a lambda passed to another QUIRE_TRY
// does not shadow the outer one.
#define QUIRE_TRY_CAT2_(a, b) a##b
#define QUIRE_TRY_CAT_(a, b) QUIRE_TRY_CAT2_(a, b)
#define QUIRE_TRY(expr)                                                                                  \
    do {                                                                                                 \
        ::quire::Status QUIRE_TRY_CAT_(quire_try_s_, __LINE__) = (expr);                                 \
        if (!QUIRE_TRY_CAT_(quire_try_s_, __LINE__).is_ok()) return QUIRE_TRY_CAT_(quire_try_s_, __LINE__); \
    } while (0)
