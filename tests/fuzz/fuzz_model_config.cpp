// libFuzzer target: config.json parsing and validation must never crash; accepted configs must
// yield a consistent tensor catalogue.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model_config.h"
#include "model_tensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto c = quire::parse_model_config(std::string_view(reinterpret_cast<const char*>(data), size));
    if (c.is_ok() && c->num_hidden_layers <= 4096 && c->hidden_size <= (1 << 20)) {
        const auto tensors = quire::expected_tensors(c.value());
        if (tensors.empty()) __builtin_trap();
    }
    return 0;
}
