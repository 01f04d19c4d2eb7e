#include "quantize/calibration.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "quantize/gptq.h"

namespace quire::quantize {

namespace {
constexpr const char* kLayerDone = "calibration layer done";

EngineOptions calibration_options(int threads) {
    EngineOptions o;
    o.threads = threads;
    return o;
}
}  // namespace

LinearInput input_of(Linear which) {
    switch (which) {
    case Linear::q:
    case Linear::k:
    case Linear::v:
    case Linear::out_gate: return LinearInput::mixer;
    case Linear::o: return LinearInput::mixer_out;
    case Linear::mlp_gate:
    case Linear::mlp_up: return LinearInput::mlp;
    case Linear::mlp_down: return LinearInput::mlp_down;
    }
    return LinearInput::mixer;
}

const float* LayerHessians::of(Linear which) const {
    auto it = h.find(input_of(which));
    return it == h.end() ? nullptr : it->second.data();
}

const float* LayerHessians::rows_of(Linear which) const {
    auto it = x.find(input_of(which));
    return it == x.end() ? nullptr : it->second.data();
}

void release_mapped_pages(const void* data, int64_t bytes) {
    if (!data || bytes <= 0) return;
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
    const auto end = reinterpret_cast<uintptr_t>(data) + static_cast<uintptr_t>(bytes);
    // Advice only: a failure leaves the pages resident, which costs memory, not correctness.
    (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Calibrator::Calibrator(std::shared_ptr<const Model> model, int threads)
    : model_(std::move(model)), engine_(model_, calibration_options(threads)), pool_(threads) {}

Result<std::unique_ptr<Calibrator>> Calibrator::create(const std::string& model_dir, int threads) {
    auto model = Model::load(model_dir);
    if (!model) return model.status();
    std::unique_ptr<Calibrator> c(new Calibrator(model.value(), threads));
    c->release_weight_pages();
    return c;
}

void Calibrator::release_weight_pages() const {
    const ModelWeights& w = model_->weights();
    // Only the mapping's pages: a float16 checkpoint's bf16 copies are heap memory, which
    // MADV_DONTNEED would zero.
    auto drop = [](const MatrixRef& m) {
        if (!m.converted) release_mapped_pages(m.data, m.rows * m.cols * 2);
    };
    drop(w.embed);
    drop(w.lm_head);
    for (const LayerWeights& l : w.layers)
        for (const MatrixRef* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.mlp_gate, &l.mlp_up, &l.mlp_down}) drop(*m);
}

void Calibrator::set_samples(std::vector<std::vector<int32_t>> samples) {
    samples_ = std::move(samples);
    tokens_ = 0;
    for (const auto& s : samples_) tokens_ += static_cast<int64_t>(s.size());
}

std::vector<std::vector<int32_t>> calibration_windows(const std::vector<int32_t>& tokens, int64_t wanted, int64_t window) {
    const auto total = static_cast<int64_t>(tokens.size());
    if (total <= wanted) return {tokens};
    const int64_t count = (wanted + window - 1) / window;
    std::vector<std::vector<int32_t>> windows;
    int64_t left = wanted;
    for (int64_t i = 0; i < count; ++i) {
        const int64_t length = std::min(window, left);
        const int64_t begin = count == 1 ? 0 : i * (total - window) / (count - 1);
        windows.emplace_back(tokens.begin() + begin, tokens.begin() + begin + length);
        left -= length;
    }
    return windows;
}

Result<LayerHessians> Calibrator::layer(int64_t layer, const std::atomic<bool>* cancel) {
    if (samples_.empty()) return Status(ErrorCode::invalid_argument, "no calibration tokens");
    LayerHessians out;
    out.rows = token_count();
    bool done = false;
    engine_.set_linear_observer([&](int64_t l, Linear which, const float* x, int64_t rows, int64_t cols) -> Status {
        if (cancel && cancel->load()) return Status(ErrorCode::cancelled, "interrupted");
        if (l != layer) return Status::ok();
        const LinearInput input = input_of(which);
        // The first layer to read an input accumulates it; the others read the same rows.
        const bool first = which == Linear::q || which == Linear::o || which == Linear::mlp_gate || which == Linear::mlp_down;
        if (first) {
            std::vector<float>& h = out.h[input];
            if (h.empty()) h.assign(static_cast<size_t>(cols * cols), 0.0f);
            out.width[input] = cols;
            accumulate_xtx(pool_, x, rows, cols, h.data());
            out.x[input].insert(out.x[input].end(), x, x + rows * cols);
        }
        if (which == Linear::mlp_down) {
            done = true;
            return Status(ErrorCode::cancelled, kLayerDone);  // the later layers are not needed
        }
        return Status::ok();
    });
    Status st = Status::ok();
    for (const auto& sample : samples_) {
        done = false;
        auto seq = engine_.new_sequence();
        PrefillRequest request;
        request.tokens = sample;
        request.chunk = 0;  // one step: stopping after this layer must not skip later chunks
        request.cancel = cancel;
        st = engine_.prefill(*seq, request, nullptr);
        if (!done) break;
    }
    engine_.set_linear_observer(nullptr);
    release_weight_pages();
    if (!done) {
        if (!st.is_ok()) return st;
        return Status(ErrorCode::invalid_argument, "the forward pass never reached layer " + std::to_string(layer) + "'s MLP");
    }
    return out;
}

}  // namespace quire::quantize
