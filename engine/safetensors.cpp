#include "safetensors.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "json.h"

namespace quire {

namespace {
struct DTypeInfo {
    DType dtype;
    const char* name;
    int64_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::bool_, "BOOL", 1}, {DType::u8, "U8", 1},       {DType::i8, "I8", 1},
    {DType::i16, "I16", 2},    {DType::u16, "U16", 2},     {DType::f16, "F16", 2},
    {DType::bf16, "BF16", 2},  {DType::i32, "I32", 4},     {DType::u32, "U32", 4},
    {DType::f32, "F32", 4},    {DType::f64, "F64", 8},     {DType::i64, "I64", 8},
    {DType::u64, "U64", 8},    {DType::f8_e4m3, "F8_E4M3", 1}, {DType::f8_e5m2, "F8_E5M2", 1},
};

Status bad(const std::string& label, const std::string& what) {
    return Status(ErrorCode::invalid_checkpoint, label + ": " + what);
}

// a * b with overflow detection (both non-negative).
bool mul_overflows(int64_t a, int64_t b, int64_t& out) { return __builtin_mul_overflow(a, b, &out); }
}  // namespace

int64_t dtype_size(DType dtype) {
    for (const auto& d : kDTypes)
        if (d.dtype == dtype) return d.size;
    return 0;
}

const char* dtype_name(DType dtype) {
    for (const auto& d : kDTypes)
        if (d.dtype == dtype) return d.name;
    return "?";
}

bool parse_dtype(std::string_view name, DType& out) {
    for (const auto& d : kDTypes)
        if (name == d.name) {
            out = d.dtype;
            return true;
        }
    return false;
}

Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* bytes, int64_t available, int64_t file_size,
                                                   const std::string& label) {
    if (file_size < 8)
        return bad(label, "truncated: the file is " + std::to_string(file_size) +
                              " bytes, too short for the 8-byte header length");
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | bytes[i];
    if (len > static_cast<uint64_t>(kMaxSafetensorsHeaderBytes))
        return bad(label, "header length " + std::to_string(len) + " exceeds the 100 MB limit");
    const auto header_length = static_cast<int64_t>(len);
    if (8 + header_length > file_size)
        return bad(label, "header length " + std::to_string(header_length) + " runs past the end of the file (" +
                              std::to_string(file_size) + " bytes)");
    if (8 + header_length > available) return bad(label, "internal error: header not readable");

    const std::string_view text(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(header_length));
    auto parsed = parse_json(text);
    if (!parsed) return bad(label, "header is not valid JSON: " + parsed.status().message());
    const JsonValue& root = parsed.value();
    if (!root.is_object()) return bad(label, "header is not a JSON object");

    SafetensorsHeader h;
    h.header_length = header_length;
    h.data_offset = 8 + header_length;
    std::unordered_set<std::string> names;
    for (const auto& [name, v] : root.members()) {
        if (name == "__metadata__") {
            if (!v.is_object()) return bad(label, "__metadata__ is not an object");
            for (const auto& [k, mv] : v.members()) {
                if (!mv.is_string()) return bad(label, "__metadata__ value for '" + k + "' is not a string");
                h.metadata[k] = mv.as_string();
            }
            continue;
        }
        if (!names.insert(name).second) return bad(label, "duplicate tensor name '" + name + "'");
        if (!v.is_object()) return bad(label, "tensor '" + name + "' is not described by an object");
        SafetensorsEntry e;
        e.name = name;
        const JsonValue* dt = v.find("dtype");
        if (!dt || !dt->is_string()) return bad(label, "tensor '" + name + "' has no dtype");
        if (!parse_dtype(dt->as_string(), e.dtype))
            return bad(label, "tensor '" + name + "' has unknown dtype '" + dt->as_string() + "'");
        const JsonValue* shape = v.find("shape");
        if (!shape || !shape->is_array()) return bad(label, "tensor '" + name + "' has no shape list");
        int64_t elements = 1;
        for (const auto& d : shape->items()) {
            if (!d.is_integer() || d.as_int() < 0)
                return bad(label, "tensor '" + name + "' has a shape entry that is not a non-negative integer");
            e.shape.push_back(d.as_int());
            if (mul_overflows(elements, d.as_int(), elements))
                return bad(label, "tensor '" + name + "' shape overflows 64 bits");
        }
        const JsonValue* off = v.find("data_offsets");
        if (!off || !off->is_array() || off->items().size() != 2 || !off->items()[0].is_integer() ||
            !off->items()[1].is_integer())
            return bad(label, "tensor '" + name + "' needs data_offsets [begin, end] as integers");
        e.begin = off->items()[0].as_int();
        e.end = off->items()[1].as_int();
        if (e.begin < 0 || e.end < e.begin)
            return bad(label, "tensor '" + name + "' has data_offsets that are negative or reversed");
        int64_t bytes_needed = 0;
        if (mul_overflows(elements, dtype_size(e.dtype), bytes_needed))
            return bad(label, "tensor '" + name + "' byte size overflows 64 bits");
        if (bytes_needed != e.end - e.begin)
            return bad(label, "size mismatch: tensor '" + name + "' shape and dtype need " +
                                  std::to_string(bytes_needed) + " bytes but its offsets span " +
                                  std::to_string(e.end - e.begin));
        h.tensors.push_back(std::move(e));
    }

    // Offsets must tile the data section exactly: sorted, starting at 0, no overlap, no gap.
    std::sort(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    int64_t expected = 0;
    for (const auto& e : h.tensors) {
        if (e.begin < expected)
            return bad(label, "overlapping offsets: tensor '" + e.name + "' starts at " + std::to_string(e.begin) +
                                  " inside the previous tensor (which ends at " + std::to_string(expected) + ")");
        if (e.begin > expected)
            return bad(label, "gap in data: bytes " + std::to_string(expected) + ".." + std::to_string(e.begin) +
                                  " before tensor '" + e.name + "' belong to no tensor");
        expected = e.end;
    }
    const int64_t data_size = file_size - h.data_offset;
    if (expected > data_size)
        return bad(label, "truncated: tensors need " + std::to_string(expected) + " data bytes but the file has " +
                              std::to_string(data_size));
    if (expected < data_size)
        return bad(label, "trailing bytes: " + std::to_string(data_size - expected) +
                              " bytes after the last tensor belong to no tensor");
    return h;
}

std::string make_safetensors_header(std::vector<SafetensorsEntry>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
    std::string json = "{";
    bool first = true;
    if (!metadata.empty()) {
        json += "\"__metadata__\":{";
        bool mfirst = true;
        for (const auto& [k, v] : metadata) {
            json += (mfirst ? "" : ",") + json_quote(k) + ":" + json_quote(v);
            mfirst = false;
        }
        json += "}";
        first = false;
    }
    int64_t offset = 0;
    for (auto& t : tensors) {
        int64_t n = dtype_size(t.dtype);
        for (int64_t d : t.shape) n *= d;
        t.begin = offset;
        t.end = offset + n;
        offset = t.end;
        json += (first ? "" : ",") + json_quote(t.name) + ":{\"dtype\":\"" + dtype_name(t.dtype) + "\",\"shape\":[";
        for (size_t i = 0; i < t.shape.size(); ++i) json += (i ? "," : "") + std::to_string(t.shape[i]);
        json += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
        first = false;
    }
    json += "}";
    while (json.size() % 8 != 0) json += ' ';
    std::string out(8, '\0');
    uint64_t len = json.size();
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xFF);
    return out + json;
}

}  // namespace quire
