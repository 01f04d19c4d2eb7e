#pragma once
// A small strict JSON parser (RFC 8259) for config files and safetensors headers.
// Strict on purpose: the input must be valid UTF-8, nesting is bounded, and integers are kept
// exactly (safetensors offsets need all 64 bits). Objects keep duplicate keys in order so that the
// caller can reject them with its own message.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "status.h"

namespace quire {

class JsonValue {
public:
    enum class Type { null, boolean, number, string, array, object };

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::null; }
    bool is_bool() const { return type_ == Type::boolean; }
    bool is_number() const { return type_ == Type::number; }
    bool is_string() const { return type_ == Type::string; }
    bool is_array() const { return type_ == Type::array; }
    bool is_object() const { return type_ == Type::object; }
    // True for numbers written without fraction or exponent that fit in int64.
    bool is_integer() const { return type_ == Type::number && is_integer_; }

    bool as_bool() const { return bool_; }
    double as_double() const { return number_; }
    int64_t as_int() const { return integer_; }
    const std::string& as_string() const { return string_; }
    const std::vector<JsonValue>& items() const { return array_; }
    const std::vector<std::pair<std::string, JsonValue>>& members() const { return object_; }

    // First member with this key, or nullptr (also for non-objects).
    const JsonValue* find(std::string_view key) const;
    // The first key that occurs twice in this object, or empty when all keys are distinct.
    std::string first_duplicate_key() const;

    static const char* type_name(Type type);

private:
    friend class JsonParser;
    Type type_ = Type::null;
    bool bool_ = false;
    bool is_integer_ = false;
    double number_ = 0.0;
    int64_t integer_ = 0;
    std::string string_;
    std::vector<JsonValue> array_;
    std::vector<std::pair<std::string, JsonValue>> object_;
};

struct JsonLimits {
    int max_depth = 64;
};

// Parses one JSON document; surrounding whitespace is allowed, anything else after it is not.
Result<JsonValue> parse_json(std::string_view text, JsonLimits limits = {});

// True when the bytes are well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

// Serialises a string as a JSON string literal (used by the tools that write configs).
std::string json_quote(std::string_view text);

}  // namespace quire
