#include "cuda/cuda_sequence.h"

#include <algorithm>
#include <string>

namespace quire::cuda {

namespace {

bool copy_rows(uint16_t* dst, const uint16_t* src, int64_t rows, int64_t width) {
    if (rows <= 0) return true;
    return cudaMemcpy(dst, src, static_cast<size_t>(rows * width) * 2, cudaMemcpyDeviceToDevice) == cudaSuccess;
}

// Own arrays for rows [base_rows, capacity) and the compressed entries past the shared ones.
bool allocate_own(CacheArrays& a, const LayerCache& layer, int64_t capacity, const SparseGeometry& g) {
    const int64_t width = g.kv_heads * g.head_dim;
    const int64_t rows = std::max<int64_t>(1, capacity - layer.base_rows);
    const int64_t e1 = std::max<int64_t>(1, g.c1_entries(capacity) - layer.base_n1);
    const int64_t e2 = std::max<int64_t>(1, g.c2_entries(capacity) - layer.base_n2);
    return a.k.allocate(rows * width) == cudaSuccess && a.v.allocate(rows * width) == cudaSuccess &&
           a.c1.allocate(e1 * width) == cudaSuccess && a.c2.allocate(e2 * width) == cudaSuccess;
}

}  // namespace

CudaSequence::CudaSequence(const SparseGeometry& geometry, int64_t lightning_floats, int64_t lightning_layers, int64_t sparse_layers)
    : geometry_(geometry), width_(geometry.kv_heads * geometry.head_dim) {
    cudaGetDevice(&device_);
    lightning_.resize(static_cast<size_t>(lightning_layers));
    for (auto& s : lightning_) {
        if (s.allocate(lightning_floats) != cudaSuccess ||
            cudaMemset(s.get(), 0, static_cast<size_t>(lightning_floats) * sizeof(float)) != cudaSuccess) {
            cudaGetLastError();
            valid_ = false;
        }
    }
    kv_.resize(static_cast<size_t>(sparse_layers));
    for (LayerCache& layer : kv_) layer.own = std::make_shared<CacheArrays>();
}

std::unique_ptr<Sequence> CudaSequence::fork() const {
    cudaSetDevice(device_);
    auto f = std::make_unique<CudaSequence>(geometry_, lightning_.empty() ? 0 : lightning_[0].size(), static_cast<int64_t>(lightning_.size()),
                                            static_cast<int64_t>(kv_.size()));
    if (!f->valid_) return nullptr;
    bool ok = true;
    for (size_t i = 0; i < lightning_.size(); ++i)
        ok = ok && cudaMemcpy(f->lightning_[i].get(), lightning_[i].get(), static_cast<size_t>(lightning_[i].size()) * 4,
                              cudaMemcpyDeviceToDevice) == cudaSuccess;
    const int64_t n = length();
    for (size_t i = 0; i < kv_.size() && ok; ++i) {
        const LayerCache& s = kv_[i];
        LayerCache& d = f->kv_[i];
        d.n1 = s.n1;
        d.n2 = s.n2;
        if (!s.base) {
            // A root: the child reads all of its rows from the root's buffers.
            d.base = s.own;
            d.base_rows = n;
            d.base_n1 = s.n1;
            d.base_n2 = s.n2;
            continue;
        }
        // A fork of a fork: share the same prefix, copy the parent's own rows (its chat, not the book).
        d.base = s.base;
        d.base_rows = s.base_rows;
        d.base_n1 = s.base_n1;
        d.base_n2 = s.base_n2;
        ok = allocate_own(*d.own, d, std::max<int64_t>(n, 64), geometry_) && copy_rows(d.own->k.get(), s.own->k.get(), n - s.base_rows, width_) &&
             copy_rows(d.own->v.get(), s.own->v.get(), n - s.base_rows, width_) &&
             copy_rows(d.own->c1.get(), s.own->c1.get(), s.n1 - s.base_n1, width_) &&
             copy_rows(d.own->c2.get(), s.own->c2.get(), s.n2 - s.base_n2, width_);
    }
    if (!ok) {
        cudaGetLastError();
        return nullptr;  // callers report it as out of memory / device error
    }
    f->capacity_ = kv_.empty() ? 0 : (kv_[0].base ? std::max<int64_t>(n, 64) : n);
    f->tokens_ = tokens_;
    f->sparse_from_ = sparse_from_;
    return f;
}

int64_t CudaSequence::capacity_for(int64_t tokens, bool exact) const {
    if (tokens <= capacity_) return capacity_;
    // Growth is of the rows this sequence owns (a fork's come after its prefix's shared rows): they
    // double, by at most 65,536 tokens a time, so decoding on a fork of a 1M prefix takes rows for its
    // own tokens, not another 1M.
    const int64_t base = kv_.empty() ? 0 : kv_[0].base_rows;
    const int64_t own = std::max<int64_t>(0, capacity_ - base);
    const int64_t cap = exact ? std::max<int64_t>(tokens, 64) : std::max(tokens, base + own + std::clamp<int64_t>(own, 64, 65536));
    return (cap + 63) / 64 * 64;
}

int64_t CudaSequence::growth_bytes(int64_t tokens, bool exact) const {
    if (tokens <= capacity_) return 0;
    const int64_t cap = capacity_for(tokens, exact);
    int64_t bytes = 0;
    for (const LayerCache& layer : kv_) {
        const int64_t rows = std::max<int64_t>(1, cap - layer.base_rows);
        const int64_t e1 = std::max<int64_t>(1, geometry_.c1_entries(cap) - layer.base_n1);
        const int64_t e2 = std::max<int64_t>(1, geometry_.c2_entries(cap) - layer.base_n2);
        bytes += (2 * rows + e1 + e2) * width_ * 2;
    }
    return bytes;
}

Status CudaSequence::reserve(int64_t tokens, bool exact) {
    if (tokens <= capacity_) return Status::ok();
    const int64_t cap = capacity_for(tokens, exact);
    const int64_t n = length();
    for (LayerCache& layer : kv_) {
        auto grown = std::make_shared<CacheArrays>();
        if (!allocate_own(*grown, layer, cap, geometry_))
            return Status(ErrorCode::out_of_memory, "the GPU has no room for " + std::to_string(cap) + " tokens of KV cache");
        // The old own arrays stay alive while a fork still reads them as its prefix.
        const CacheArrays& old = *layer.own;
        if (!copy_rows(grown->k.get(), old.k.get(), n - layer.base_rows, width_) ||
            !copy_rows(grown->v.get(), old.v.get(), n - layer.base_rows, width_) ||
            !copy_rows(grown->c1.get(), old.c1.get(), layer.n1 - layer.base_n1, width_) ||
            !copy_rows(grown->c2.get(), old.c2.get(), layer.n2 - layer.base_n2, width_)) {
            cudaGetLastError();
            return Status(ErrorCode::device_error, "CUDA: copying the KV cache to its new place failed");
        }
        layer.own = std::move(grown);
    }
    capacity_ = cap;
    return Status::ok();
}

int64_t CudaSequence::owned_bytes() const {
    int64_t b = 0;
    for (const auto& s : lightning_) b += s.size() * 4;
    for (const LayerCache& layer : kv_)
        for (const DeviceArray<uint16_t>* a : {&layer.own->k, &layer.own->v, &layer.own->c1, &layer.own->c2}) b += a->size() * 2;
    return b;
}

}  // namespace quire::cuda
