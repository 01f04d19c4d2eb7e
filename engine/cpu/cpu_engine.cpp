#include "cpu/cpu_engine.h"

#include "cpu/cpu_state_rows.h"
#include "cpu/lightning_attention.h"
#include "prefill_loop.h"
#include "sala_forward.h"

namespace quire::cpu {

namespace {
CpuSequence& as_cpu(Sequence& s) { return static_cast<CpuSequence&>(s); }
const CpuSequence& as_cpu(const Sequence& s) { return static_cast<const CpuSequence&>(s); }
}  // namespace

CpuEngine::CpuEngine(std::shared_ptr<const Model> model, const EngineOptions& options)
    : model_(std::move(model)), options_(options), pool_(options.threads) {
    const ModelConfig& c = model_->config();
    view_.model = model_.get();
    view_.pool = &pool_;
    view_.geometry = SparseGeometry::from(c);
    view_.slopes = alibi_slopes(c.lightning_nh);
    int64_t ns = 0, nl = 0;
    for (MixerType t : c.mixer_types) view_.slot.push_back(t == MixerType::sparse ? ns++ : nl++);
    view_.round = options_.precision == Precision::bf16;
    view_.probe = &probe_;
    view_.observer = &observer_;
}

std::unique_ptr<Sequence> CpuEngine::new_sequence() { return std::make_unique<CpuSequence>(model_->config()); }

Status CpuEngine::forward(CpuSequence& seq, const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                          std::vector<std::vector<float>>* logits) {
    StepShape step;
    step.n = n;
    step.pos0 = seq.length();
    step.first_sparse = first_sparse_query(view_.geometry, options_.regime, step.pos0, n, request_end);
    step.ids = ids;
    step.logit_rows = rows;
    CpuSalaOps ops(view_, seq, n);
    QUIRE_TRY(sala_forward(model_->config(), ops, step, logits));
    counters_.forward_calls++;
    return Status::ok();
}

Status CpuEngine::prefill(Sequence& s, const PrefillRequest& req, std::vector<std::vector<float>>* logits) {
    CpuSequence& seq = as_cpu(s);
    auto step = [&](const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                    std::vector<std::vector<float>>* out) { return forward(seq, ids, n, request_end, rows, out); };
    return run_chunked_prefill(req, seq.length(), step, counters_, logits);
}

Status CpuEngine::decode(Sequence& s, int32_t token, std::vector<float>* logits) {
    CpuSequence& seq = as_cpu(s);
    std::vector<std::vector<float>> got;
    QUIRE_TRY(forward(seq, &token, 1, seq.length() + 1, {0}, &got));
    counters_.decoded_tokens++;
    if (logits) *logits = std::move(got[0]);
    return Status::ok();
}

std::unique_ptr<StateRows> CpuEngine::rows_to_save(const Sequence& s) { return cpu_state_rows(view_.slot, &as_cpu(s), nullptr); }

std::unique_ptr<StateRows> CpuEngine::rows_to_load(Sequence& s) { return cpu_state_rows(view_.slot, nullptr, &as_cpu(s)); }

Result<std::unique_ptr<Sequence>> CpuEngine::sequence_for_state(const StateHeader& header, std::vector<int32_t> tokens) {
    auto seq = std::make_unique<CpuSequence>(model_->config());
    seq->tokens_ = std::move(tokens);
    seq->sparse_from_ = header.sparse_from;
    return std::unique_ptr<Sequence>(std::move(seq));
}

Result<std::unique_ptr<Sequence>> CpuEngine::sequence_for_delta(const Sequence& prefix, const StateHeader& header,
                                                                std::vector<int32_t> tokens) {
    std::unique_ptr<Sequence> seq = prefix.fork();  // full pages shared; the delta's rows are appended
    CpuSequence& cs = as_cpu(*seq);
    cs.tokens_ = std::move(tokens);
    cs.sparse_from_ = header.sparse_from;
    return seq;
}

}  // namespace quire::cpu
