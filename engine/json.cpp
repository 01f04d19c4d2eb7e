#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <unordered_set>

namespace quire {

const JsonValue* JsonValue::find(std::string_view key) const {
    if (type_ != Type::object) return nullptr;
    for (const auto& [k, v] : object_)
        if (k == key) return &v;
    return nullptr;
}

std::string JsonValue::first_duplicate_key() const {
    std::unordered_set<std::string_view> seen;
    for (const auto& [k, v] : object_)
        if (!seen.insert(k).second) return k;
    return {};
}

const char* JsonValue::type_name(Type type) {
    switch (type) {
    case Type::null: return "null";
    case Type::boolean: return "boolean";
    case Type::number: return "number";
    case Type::string: return "string";
    case Type::array: return "array";
    case Type::object: return "object";
    }
    return "?";
}

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) { ++i; continue; }
        int len = 0;
        uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + static_cast<size_t>(len) > n) return false;
        for (int k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += static_cast<size_t>(len);
    }
    return true;
}

namespace {
void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}
}  // namespace

class JsonParser {
public:
    JsonParser(std::string_view text, JsonLimits limits) : s_(text), limits_(limits) {}

    Result<JsonValue> parse() {
        if (!is_valid_utf8(s_)) return fail("text is not valid UTF-8");
        skip_ws();
        JsonValue v;
        if (!parse_value(v, 0)) return error_;
        skip_ws();
        if (pos_ != s_.size()) return fail("unexpected characters after the JSON value");
        return v;
    }

private:
    Status fail(const std::string& what) {
        return Status(ErrorCode::parse_error, "JSON: " + what + " at offset " + std::to_string(pos_));
    }
    bool error(const std::string& what) {
        error_ = fail(what);
        return false;
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
    }
    bool literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) return error("invalid literal");
        pos_ += word.size();
        return true;
    }

    bool parse_value(JsonValue& v, int depth) {
        if (depth > limits_.max_depth) return error("nesting deeper than " + std::to_string(limits_.max_depth));
        if (pos_ >= s_.size()) return error("unexpected end of input");
        const char c = s_[pos_];
        switch (c) {
        case 'n': v.type_ = JsonValue::Type::null; return literal("null");
        case 't': v.type_ = JsonValue::Type::boolean; v.bool_ = true; return literal("true");
        case 'f': v.type_ = JsonValue::Type::boolean; v.bool_ = false; return literal("false");
        case '"': v.type_ = JsonValue::Type::string; return parse_string(v.string_);
        case '[': return parse_array(v, depth);
        case '{': return parse_object(v, depth);
        default:
            if (c == '-' || (c >= '0' && c <= '9')) return parse_number(v);
            return error(std::string("unexpected character '") + c + "'");
        }
    }

    bool parse_hex4(uint32_t& out) {
        if (pos_ + 4 > s_.size()) return error("truncated \\u escape");
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = s_[pos_++];
            out <<= 4;
            if (h >= '0' && h <= '9') out |= static_cast<uint32_t>(h - '0');
            else if (h >= 'a' && h <= 'f') out |= static_cast<uint32_t>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') out |= static_cast<uint32_t>(h - 'A' + 10);
            else return error("bad hex digit in \\u escape");
        }
        return true;
    }

    bool parse_string(std::string& out) {
        ++pos_;  // opening quote
        while (true) {
            if (pos_ >= s_.size()) return error("unterminated string");
            const char c = s_[pos_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return error("control character in string");
            if (c != '\\') { out += c; continue; }
            if (pos_ >= s_.size()) return error("unterminated escape");
            const char e = s_[pos_++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp = 0;
                if (!parse_hex4(cp)) return false;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (s_.substr(pos_, 2) != "\\u") return error("unpaired surrogate");
                    pos_ += 2;
                    uint32_t lo = 0;
                    if (!parse_hex4(lo)) return false;
                    if (lo < 0xDC00 || lo > 0xDFFF) return error("unpaired surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return error("unpaired surrogate");
                }
                append_utf8(out, cp);
                break;
            }
            default: return error("invalid escape");
            }
        }
    }

    bool parse_number(JsonValue& v) {
        const size_t start = pos_;
        bool integral = true;
        if (s_[pos_] == '-') ++pos_;
        if (pos_ >= s_.size()) return error("truncated number");
        if (s_[pos_] == '0') {
            ++pos_;
        } else if (s_[pos_] >= '1' && s_[pos_] <= '9') {
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        } else {
            return error("invalid number");
        }
        if (pos_ < s_.size() && s_[pos_] == '.') {
            integral = false;
            ++pos_;
            if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') return error("invalid fraction");
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            integral = false;
            ++pos_;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
            if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') return error("invalid exponent");
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        }
        const std::string text(s_.substr(start, pos_ - start));
        v.type_ = JsonValue::Type::number;
        v.number_ = std::strtod(text.c_str(), nullptr);
        if (!std::isfinite(v.number_)) return error("number out of range");
        if (integral) {
            errno = 0;
            const long long i = std::strtoll(text.c_str(), nullptr, 10);
            if (errno == 0) {
                v.is_integer_ = true;
                v.integer_ = i;
            }
        }
        return true;
    }

    bool parse_array(JsonValue& v, int depth) {
        v.type_ = JsonValue::Type::array;
        ++pos_;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return true; }
        while (true) {
            skip_ws();
            JsonValue item;
            if (!parse_value(item, depth + 1)) return false;
            v.array_.push_back(std::move(item));
            skip_ws();
            if (pos_ >= s_.size()) return error("unterminated array");
            if (s_[pos_] == ',') { ++pos_; continue; }
            if (s_[pos_] == ']') { ++pos_; return true; }
            return error("expected ',' or ']'");
        }
    }

    bool parse_object(JsonValue& v, int depth) {
        v.type_ = JsonValue::Type::object;
        ++pos_;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return true; }
        while (true) {
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') return error("expected a string key");
            std::string key;
            if (!parse_string(key)) return false;
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != ':') return error("expected ':'");
            ++pos_;
            skip_ws();
            JsonValue item;
            if (!parse_value(item, depth + 1)) return false;
            v.object_.emplace_back(std::move(key), std::move(item));
            skip_ws();
            if (pos_ >= s_.size()) return error("unterminated object");
            if (s_[pos_] == ',') { ++pos_; continue; }
            if (s_[pos_] == '}') { ++pos_; return true; }
            return error("expected ',' or '}'");
        }
    }

    std::string_view s_;
    JsonLimits limits_;
    size_t pos_ = 0;
    Status error_;
};

Result<JsonValue> parse_json(std::string_view text, JsonLimits limits) {
    return JsonParser(text, limits).parse();
}

std::string json_quote(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                static const char* hex = "0123456789abcdef";
                out += "\\u00";
                out += hex[(c >> 4) & 0xF];
                out += hex[c & 0xF];
            } else {
                out += c;
            }
        }
    }
    out += '"';
    return out;
}

}  // namespace quire
