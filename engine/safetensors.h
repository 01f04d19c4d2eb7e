#pragma once
// Parsing and validating one safetensors file (https://github.com/huggingface/safetensors, format
// section): 8-byte little-endian header length, a UTF-8 JSON header, then the raw tensor bytes.
// Every rule below exists so that a hostile or damaged file can never make us read outside it or
// alias two tensors onto the same bytes.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace quire {

enum class DType { bool_, u8, i8, i16, u16, f16, bf16, i32, u32, f32, f64, i64, u64, f8_e4m3, f8_e5m2 };

// Size in bytes of one element, and the safetensors name ("BF16").
int64_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool parse_dtype(std::string_view name, DType& out);

struct SafetensorsEntry {
    std::string name;
    DType dtype = DType::bf16;
    std::vector<int64_t> shape;
    int64_t begin = 0;  // offsets relative to the start of the data section
    int64_t end = 0;
};

struct SafetensorsHeader {
    int64_t header_length = 0;   // bytes of JSON after the 8-byte length
    int64_t data_offset = 0;     // 8 + header_length
    std::vector<SafetensorsEntry> tensors;  // in file order (sorted by begin)
    std::map<std::string, std::string> metadata;
};

constexpr int64_t kMaxSafetensorsHeaderBytes = 100'000'000;  // the format's own limit

// Validates the header against the file's real size. `bytes` must hold at least the first
// min(file_size, 8 + header_length) bytes of the file. Errors name the file via `label`.
Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* bytes, int64_t available, int64_t file_size,
                                                   const std::string& label);

// Serialises a header for writers (the tiny-model maker, tests): 8-byte length + JSON padded with
// spaces to a multiple of 8 bytes, offsets assigned contiguously in the given order.
std::string make_safetensors_header(std::vector<SafetensorsEntry>& tensors,
                                    const std::map<std::string, std::string>& metadata);

}  // namespace quire
