#pragma once
// The CPU engine's sequence state (design.md "Sequence state"): token ids; per Lightning layer
// the fp32 state [heads, dk, dv]; per sparse layer K and V (one row per token, [kv_heads * d]) and
// the compressed keys C1/C2, all in 64-row pages that forks share.

#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/paged_rows.h"
#include "engine.h"

namespace quire::cpu {

struct SparseLayerState {
    PagedRows k, v, c1, c2;
};

class CpuSequence : public Sequence {
public:
    CpuSequence(const ModelConfig& config);

    int64_t length() const override { return static_cast<int64_t>(tokens_.size()); }
    const std::vector<int32_t>& tokens() const override { return tokens_; }
    std::unique_ptr<Sequence> fork() const override;
    int64_t sparse_from() const override { return sparse_from_; }

    std::vector<int32_t> tokens_;
    std::vector<std::vector<float>> lightning_;  // indexed by lightning layer ordinal
    std::vector<SparseLayerState> sparse_;       // indexed by sparse layer ordinal
    int64_t sparse_from_ = -1;                   // first position processed with InfLLM-v2
};

}  // namespace quire::cpu
