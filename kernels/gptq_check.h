#pragma once
// What every GPTQ launcher demands of a GptqView before it launches (host side): the loader
// validates checkpoints with messages; this only keeps a kernel from reading out of bounds when a
// caller hands it something the loader would have refused.

#include <cstdint>

#include "gptq_view.h"

namespace quire::kernels {

inline int gptq_per_word(int bits) { return 32 / bits; }

// bits 4 or 8; in and out positive multiples of the values per int32 word (qweight packs `in`,
// qzeros packs `out`); group_size positive; zero_offset 0 or 1; every pointer but g_idx set and
// 16-byte aligned (the kernels read qweight rows and scales with vector loads).
inline bool gptq_view_usable(const GptqView& w) {
    if (w.bits != 4 && w.bits != 8) return false;
    const int pw = gptq_per_word(w.bits);
    if (w.in <= 0 || w.out <= 0 || w.in % pw || w.out % pw || w.group_size <= 0) return false;
    if (w.zero_offset != 0 && w.zero_offset != 1) return false;
    if (w.tiled && w.out % kGptqTileCols) return false;
    if (!w.qweight || !w.qzeros || !w.scales) return false;
    if (reinterpret_cast<uintptr_t>(w.qweight) % 16 || reinterpret_cast<uintptr_t>(w.scales) % 8 ||
        reinterpret_cast<uintptr_t>(w.qzeros) % 4 || reinterpret_cast<uintptr_t>(w.g_idx) % 4)
        return false;
    return true;
}

// Number of groups (rows of scales and qzeros) the contiguous layout has.
inline int64_t gptq_groups(const GptqView& w) { return (w.in + w.group_size - 1) / w.group_size; }

}  // namespace quire::kernels
