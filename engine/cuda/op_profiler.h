#pragma once
// Per-operation GPU time of the CUDA engine's forward passes (QUIRE_CUDA_PROFILE=1): CUDA events
// around each launch group, summed per category after the pass's final synchronisation. Off by
// default: events cost a little and serialise nothing, but the numbers are only for benchmarks.

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace quire::cuda {

enum class Op { embedding, gemm, norms, lightning, kv_cache, stage1, selection, attention, logits, count };

inline const char* op_name(Op op) {
    static const char* names[] = {"embedding", "GEMMs (cuBLAS)", "norms, RoPE, gates, residuals", "Lightning", "KV cache and C1/C2",
                                  "stage 1 + pooling", "top-k selection", "block attention", "logits"};
    return names[static_cast<int>(op)];
}

class OpProfiler {
public:
    OpProfiler() : on_(std::getenv("QUIRE_CUDA_PROFILE") != nullptr) {}
    ~OpProfiler() {
        for (cudaEvent_t e : events_) cudaEventDestroy(e);
    }
    OpProfiler(const OpProfiler&) = delete;
    OpProfiler& operator=(const OpProfiler&) = delete;

    bool enabled() const { return on_; }
    void set_stream(cudaStream_t stream) { stream_ = stream; }
    // A benchmark's ablation (quire-bench --ablate): the operations of the categories in `mask`
    // (bit i: Op i) are not launched in one-token steps, so a step's time without them can be
    // measured. Their outputs are then stale: the numbers the step computes mean nothing.
    void set_skipped(uint32_t mask) { skipped_ = mask; }
    void set_one_token_step(bool on) { one_token_step_ = on; }
    // Runs f (returning Status) between two events of category op.
    template <typename F>
    auto time(Op op, F&& f) {
        if (one_token_step_ && (skipped_ >> static_cast<int>(op) & 1u)) return decltype(f()){};
        if (!on_) return f();
        cudaEventRecord(event(), stream_);
        auto s = f();
        cudaEventRecord(event(), stream_);
        marks_.push_back(op);
        return s;
    }
    // After the device has synchronised: adds this pass's times to the totals.
    void collect() {
        if (!on_) return;
        for (size_t i = 0; i < marks_.size(); ++i) {
            float ms = 0.0f;
            if (cudaEventElapsedTime(&ms, events_[2 * i], events_[2 * i + 1]) == cudaSuccess)
                totals_[static_cast<size_t>(marks_[i])] += static_cast<double>(ms) / 1000.0;
        }
        marks_.clear();
        used_ = 0;
    }
    std::vector<std::pair<std::string, double>> report() const {
        std::vector<std::pair<std::string, double>> r;
        for (int i = 0; i < static_cast<int>(Op::count); ++i) r.emplace_back(op_name(static_cast<Op>(i)), totals_[static_cast<size_t>(i)]);
        return r;
    }
    void reset() { totals_.fill(0.0); }

private:
    cudaEvent_t event() {
        if (used_ == events_.size()) {
            cudaEvent_t e = nullptr;
            cudaEventCreate(&e);
            events_.push_back(e);
        }
        return events_[used_++];
    }
    bool on_;
    uint32_t skipped_ = 0;
    bool one_token_step_ = false;
    cudaStream_t stream_ = nullptr;
    std::vector<cudaEvent_t> events_;
    size_t used_ = 0;
    std::vector<Op> marks_;
    std::array<double, static_cast<size_t>(Op::count)> totals_{};
};

}  // namespace quire::cuda
