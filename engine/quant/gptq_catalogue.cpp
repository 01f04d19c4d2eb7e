#include "quant/gptq_catalogue.h"

#include <cstring>

namespace quire {

int64_t effective_group_size(const ModuleQuant& q, int64_t in) { return q.group_size == -1 ? in : q.group_size; }

std::array<GptqTensorSpec, 4> gptq_tensor_specs(const std::string& module, int64_t in, int64_t out, const ModuleQuant& q) {
    const int64_t per_word = 32 / q.bits;
    const int64_t gs = effective_group_size(q, in);
    const int64_t groups = gs > 0 ? in / gs : 0;
    return {GptqTensorSpec{module + ".qweight", DType::i32, {in / per_word, out}},
            GptqTensorSpec{module + ".qzeros", DType::i32, {groups, out / per_word}},
            GptqTensorSpec{module + ".scales", DType::f16, {groups, out}},
            GptqTensorSpec{module + ".g_idx", DType::i32, {in}}};
}

void check_module_shape(const std::string& module, int64_t in, int64_t out, const ModuleQuant& q,
                        std::vector<std::string>& problems) {
    const int64_t per_word = 32 / q.bits;
    const std::string what = "quantization_config: module " + module + " (in_features " + std::to_string(in) +
                             ", out_features " + std::to_string(out) + ", bits " + std::to_string(q.bits) +
                             (q.rule.empty() ? "" : ", by dynamic rule \"" + q.rule + "\"") + ")";
    if (q.group_size != -1 && in % q.group_size != 0)
        problems.push_back(what + ": group_size " + std::to_string(q.group_size) + " does not divide in_features");
    if (in % per_word != 0)
        problems.push_back(what + ": in_features is not a multiple of " + std::to_string(per_word) +
                           " values per int32 word");
    if (out % per_word != 0)
        problems.push_back(what + ": out_features is not a multiple of " + std::to_string(per_word) +
                           " zeros per int32 word");
}

bool check_g_idx(const uint8_t* bytes, int64_t in, int64_t group_size, const std::string& name,
                 std::vector<std::string>& problems, bool* trivial) {
    const int64_t groups = in / group_size;
    *trivial = true;
    for (int64_t k = 0; k < in; ++k) {
        int32_t g;
        std::memcpy(&g, bytes + 4 * k, 4);
        if (g < 0 || g >= groups) {
            problems.push_back("tensor '" + name + "': g_idx[" + std::to_string(k) + "] = " + std::to_string(g) +
                               " is not a group (0 .. " + std::to_string(groups - 1) + ")");
            return false;
        }
        if (g != k / group_size) *trivial = false;
    }
    return true;
}

bool check_scales(const uint8_t* bytes, int64_t groups, int64_t out, const std::string& name,
                  std::vector<std::string>& problems) {
    for (int64_t i = 0; i < groups * out; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        if ((h & 0x7C00u) == 0x7C00u) {  // all exponent bits set: inf or NaN
            problems.push_back("tensor '" + name + "': scales[" + std::to_string(i / out) + ", " + std::to_string(i % out) +
                               "] is " + ((h & 0x3FFu) ? "NaN" : "infinite"));
            return false;
        }
    }
    return true;
}

}  // namespace quire
