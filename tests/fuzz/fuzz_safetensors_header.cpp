// libFuzzer target: the safetensors header parser must never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto h = quire::parse_safetensors_header(data, static_cast<int64_t>(size), static_cast<int64_t>(size), "fuzz");
    if (h.is_ok()) {
        // Accepted headers must describe bytes inside the input.
        for (const auto& t : h->tensors)
            if (h->data_offset + t.end > static_cast<int64_t>(size)) __builtin_trap();
    }
    return 0;
}
