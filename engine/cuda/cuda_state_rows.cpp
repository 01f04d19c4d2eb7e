#include "cuda/cuda_state_rows.h"

#include <algorithm>

namespace quire::cuda {

namespace {
kernels::RowSource source_of(const LayerCache& c, SectionKind kind) {
    switch (kind) {
    case SectionKind::sparse_k: return c.k();
    case SectionKind::sparse_v: return c.v();
    case SectionKind::sparse_c1: return c.c1();
    default: return c.c2();
    }
}
}  // namespace

Status CudaStateRows::read_rows(const SectionSpec& s, int64_t first, int64_t count, void* dst) {
    cudaSetDevice(e_.options_.gpu);  // the codec calls from its own threads
    const auto slot = static_cast<size_t>(e_.slot_[s.layer]);
    auto* out = static_cast<uint8_t*>(dst);
    if (s.kind == SectionKind::lightning_state)
        return e_.staging_.download(out, from_->lightning_[slot].get() + first * s.width, count * s.width * 4);
    // A forked sequence's rows: the shared prefix's part, then its own.
    const kernels::RowSource src = source_of(from_->kv_[slot], s.kind);
    const int64_t row_bytes = s.width * 2;
    const int64_t shared = std::clamp<int64_t>(src.split - first, 0, count);
    if (shared > 0) QUIRE_TRY(e_.staging_.download(out, src.row(first, s.width), shared * row_bytes));
    if (count > shared) QUIRE_TRY(e_.staging_.download(out + shared * row_bytes, src.row(first + shared, s.width), (count - shared) * row_bytes));
    return Status::ok();
}

Status CudaStateRows::write_rows(const SectionSpec& s, int64_t first, int64_t count, const void* src) {
    cudaSetDevice(e_.options_.gpu);  // the codec calls from its own threads
    const auto slot = static_cast<size_t>(e_.slot_[s.layer]);
    if (s.kind == SectionKind::lightning_state)
        return e_.staging_.upload(into_->lightning_[slot].get() + first * s.width, src, count * s.width * 4);
    CacheArrays& own = *into_->kv_[slot].own;
    uint16_t* base = s.kind == SectionKind::sparse_k ? own.k.get() : s.kind == SectionKind::sparse_v ? own.v.get()
                   : s.kind == SectionKind::sparse_c1 ? own.c1.get() : own.c2.get();
    return e_.staging_.upload(base + first * s.width, src, count * s.width * 2);
}

}  // namespace quire::cuda
