#pragma once
// The CUDA engine's sequence state: per sparse layer K, V, C1, C2 (bf16, rows of kv_heads * head_dim)
// and per Lightning layer the fp32 state. A fork shares its parent's cache rows instead of copying
// them: the rows a sequence had when it was forked from a root live in that root's buffers (shared,
// append-only, so never rewritten below the fork point), later rows in the sequence's own buffers.
// Kernels read the two parts through kernels::RowSource. Only the Lightning states (50 MB for the
// 9B model) and, when forking a fork, the parent's own rows are copied.

#include <memory>
#include <vector>

#include "cuda/device_array.h"
#include "engine.h"
#include "sala_geometry.h"
#include "row_source.h"

namespace quire::cuda {

struct CacheArrays {
    DeviceArray<uint16_t> k, v, c1, c2;
};

struct LayerCache {
    std::shared_ptr<const CacheArrays> base;  // shared prefix, or null
    int64_t base_rows = 0, base_n1 = 0, base_n2 = 0;
    std::shared_ptr<CacheArrays> own;  // rows base_rows.., entries base_n1.., base_n2.. (shared_ptr: a fork may take it as base)
    int64_t n1 = 0, n2 = 0;            // compressed entries in total

    kernels::RowSource k() const { return source(base ? base->k.get() : nullptr, own->k.get(), base_rows); }
    kernels::RowSource v() const { return source(base ? base->v.get() : nullptr, own->v.get(), base_rows); }
    kernels::RowSource c1() const { return source(base ? base->c1.get() : nullptr, own->c1.get(), base_n1); }
    kernels::RowSource c2() const { return source(base ? base->c2.get() : nullptr, own->c2.get(), base_n2); }

private:
    static kernels::RowSource source(const uint16_t* shared, const uint16_t* mine, int64_t split) {
        return shared ? kernels::RowSource(shared, split, mine) : kernels::RowSource(mine);
    }
};

class CudaSequence : public Sequence {
public:
    CudaSequence(const SparseGeometry& geometry, int64_t lightning_floats, int64_t lightning_layers, int64_t sparse_layers);
    int64_t length() const override { return static_cast<int64_t>(tokens_.size()); }
    const std::vector<int32_t>& tokens() const override { return tokens_; }
    std::unique_ptr<Sequence> fork() const override;
    int64_t sparse_from() const override { return sparse_from_; }

    // Makes room for `tokens` rows in every sparse layer, keeping what is there: exactly (a prefill
    // that knows its final length) or at least doubling (token-by-token growth).
    Status reserve(int64_t tokens, bool exact = false);
    // The capacity reserve() would grow to for `tokens`, and the bytes of cache rows that growth
    // allocates (0 when the sequence already holds them).
    int64_t capacity_for(int64_t tokens, bool exact) const;
    int64_t growth_bytes(int64_t tokens, bool exact) const;
    // Device bytes this sequence owns (its own rows and states; shared prefixes not counted).
    int64_t owned_bytes() const;

    SparseGeometry geometry_;
    int64_t width_;
    int device_ = 0;
    int64_t capacity_ = 0;  // rows every layer can hold (shared prefix included)
    std::vector<int32_t> tokens_;
    std::vector<DeviceArray<float>> lightning_;
    std::vector<LayerCache> kv_;
    int64_t sparse_from_ = -1;
    bool valid_ = true;  // false when the constructor could not allocate
};

}  // namespace quire::cuda
