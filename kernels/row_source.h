#pragma once
// Rows of a per-layer cache array (K, V, C1 or C2; rows of `width` bf16) that may live in two
// buffers: rows [0, split) in `base` — a prefix shared with the sequence this one was forked from —
// and rows [split, ..) in `own`, stored from its first row. A plain pointer converts to a source
// with everything in one buffer. Usable on host and device.

#include <cstdint>

#ifdef __CUDACC__
#define QUIRE_HD __host__ __device__
#else
#define QUIRE_HD
#endif

namespace quire::kernels {

struct RowSource {
    const uint16_t* base = nullptr;
    const uint16_t* own = nullptr;
    int64_t split = 0;

    RowSource() = default;
    QUIRE_HD RowSource(const uint16_t* all) : base(all), own(all), split(0) {}  // NOLINT: implicit on purpose
    QUIRE_HD RowSource(const uint16_t* shared_prefix, int64_t prefix_rows, const uint16_t* rest)
        : base(shared_prefix), own(rest), split(prefix_rows) {}

    QUIRE_HD const uint16_t* row(int64_t r, int64_t width) const { return r < split ? base + r * width : own + (r - split) * width; }
};

}  // namespace quire::kernels

#undef QUIRE_HD
