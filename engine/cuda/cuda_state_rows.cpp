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
    const int64_t row_bytes = s.width * 2, at = s.first_row + first;
    const int64_t shared = std::clamp<int64_t>(src.split - at, 0, count);
    if (shared > 0) QUIRE_TRY(e_.staging_.download(out, src.row(at, s.width), shared * row_bytes));
    if (count > shared) QUIRE_TRY(e_.staging_.download(out + shared * row_bytes, src.row(at + shared, s.width), (count - shared) * row_bytes));
    return Status::ok();
}

void* CudaStateRows::acquire_buffer(int64_t bytes) { return into_ ? e_.staging_.acquire(bytes) : nullptr; }

void CudaStateRows::release_buffer(void* buffer) { e_.staging_.release(buffer); }

Status CudaStateRows::finish() {
    cudaSetDevice(e_.options_.gpu);
    return e_.staging_.finish();
}

CudaStateRows::~CudaStateRows() {
    // A load that stopped half way: no copy may still be writing into the sequence being dropped.
    if (into_) (void)finish();
}

Status CudaStateRows::write_rows(const SectionSpec& s, int64_t first, int64_t count, const void* src) {
    cudaSetDevice(e_.options_.gpu);  // the codec calls from its own threads
    const auto slot = static_cast<size_t>(e_.slot_[s.layer]);
    if (e_.staging_.owns(src) && !into_) {
        e_.staging_.release(const_cast<void*>(src));
        return Status(ErrorCode::invalid_argument, "rows to save were handed a load buffer");
    }
    if (s.kind == SectionKind::lightning_state)
        return e_.staging_.upload_async(into_->lightning_[slot].get() + first * s.width, src, count * s.width * 4);
    // The sequence owns the rows from its fork point on (all of them for a whole state).
    const LayerCache& layer = into_->kv_[slot];
    CacheArrays& own = *layer.own;
    uint16_t* base = s.kind == SectionKind::sparse_k ? own.k.get() : s.kind == SectionKind::sparse_v ? own.v.get()
                   : s.kind == SectionKind::sparse_c1 ? own.c1.get() : own.c2.get();
    const int64_t owned_from = s.kind == SectionKind::sparse_c1 ? layer.base_n1 : s.kind == SectionKind::sparse_c2 ? layer.base_n2 : layer.base_rows;
    const int64_t at = s.first_row + first - owned_from;
    if (at < 0) {
        e_.staging_.release(const_cast<void*>(src));
        return Status(ErrorCode::state_malformed, "a delta state's rows lie inside its prefix");
    }
    return e_.staging_.upload_async(base + at * s.width, src, count * s.width * 2);
}

}  // namespace quire::cuda
