#include "cpu/cpu_state_rows.h"

#include <cstring>

namespace quire::cpu {

namespace {

class CpuStateRows : public StateRows {
public:
    CpuStateRows(const std::vector<int64_t>& slot, const CpuSequence* from, CpuSequence* into) : slot_(slot), from_(from), into_(into) {}

    SectionDType cache_dtype() const override { return SectionDType::f32; }

    Status read_rows(const SectionSpec& s, int64_t first, int64_t count, void* dst) override {
        auto* out = static_cast<float*>(dst);
        const auto slot = static_cast<size_t>(slot_[s.layer]);
        if (s.kind == SectionKind::lightning_state) {
            std::memcpy(out, from_->lightning_[slot].data() + first * s.width, static_cast<size_t>(count * s.width) * 4);
            return Status::ok();
        }
        const PagedRows& rows = pick(from_->sparse_[slot], s.kind);
        for (int64_t i = 0; i < count; ++i) std::memcpy(out + i * s.width, rows.row(first + i), static_cast<size_t>(s.width) * 4);
        return Status::ok();
    }

    Status write_rows(const SectionSpec& s, int64_t first, int64_t count, const void* src) override {
        const auto* in = static_cast<const float*>(src);
        const auto slot = static_cast<size_t>(slot_[s.layer]);
        if (s.kind == SectionKind::lightning_state) {
            std::memcpy(into_->lightning_[slot].data() + first * s.width, in, static_cast<size_t>(count * s.width) * 4);
            return Status::ok();
        }
        SparseLayerState& st = into_->sparse_[slot];
        PagedRows& rows = s.kind == SectionKind::sparse_k ? st.k : s.kind == SectionKind::sparse_v ? st.v : s.kind == SectionKind::sparse_c1 ? st.c1 : st.c2;
        if (rows.size() != first) return Status(ErrorCode::state_malformed, "state rows arrived out of order");
        for (int64_t i = 0; i < count; ++i) rows.append(in + i * s.width);
        return Status::ok();
    }

private:
    static const PagedRows& pick(const SparseLayerState& st, SectionKind kind) {
        return kind == SectionKind::sparse_k ? st.k : kind == SectionKind::sparse_v ? st.v : kind == SectionKind::sparse_c1 ? st.c1 : st.c2;
    }
    const std::vector<int64_t>& slot_;
    const CpuSequence* from_;
    CpuSequence* into_;
};

}  // namespace

std::unique_ptr<StateRows> cpu_state_rows(const std::vector<int64_t>& slot, const CpuSequence* from, CpuSequence* into) {
    return std::make_unique<CpuStateRows>(slot, from, into);
}

}  // namespace quire::cpu
