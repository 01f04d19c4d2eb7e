#include "cpu/cpu_sequence.h"

namespace quire::cpu {

CpuSequence::CpuSequence(const ModelConfig& c) {
    const int64_t kv_width = c.num_key_value_heads * c.head_dim;
    for (MixerType t : c.mixer_types) {
        if (t == MixerType::lightning) {
            lightning_.emplace_back(static_cast<size_t>(c.lightning_nh * c.lightning_head_dim * c.lightning_head_dim), 0.0f);
        } else {
            sparse_.push_back({PagedRows(kv_width), PagedRows(kv_width), PagedRows(kv_width), PagedRows(kv_width)});
        }
    }
}

std::unique_ptr<Sequence> CpuSequence::fork() const {
    auto f = std::make_unique<CpuSequence>(*this);  // copies tokens and Lightning states
    for (size_t i = 0; i < sparse_.size(); ++i) {
        f->sparse_[i].k = sparse_[i].k.fork();
        f->sparse_[i].v = sparse_[i].v.fork();
        f->sparse_[i].c1 = sparse_[i].c1.fork();
        f->sparse_[i].c2 = sparse_[i].c2.fork();
    }
    return f;
}

}  // namespace quire::cpu
