#include "prefill_loop.h"

#include <chrono>

namespace quire {

Status run_chunked_prefill(const PrefillRequest& req, int64_t start, const ForwardStep& forward, EngineCounters& counters,
                           std::vector<std::vector<float>>* logits) {
    const auto n = static_cast<int64_t>(req.tokens.size());
    const int64_t request_end = start + n;
    for (int64_t p : req.logits_positions)
        if (p < start || p >= request_end)
            return Status(ErrorCode::out_of_range, "logits position " + std::to_string(p) + " is outside this request [" +
                                                       std::to_string(start) + ", " + std::to_string(request_end) + ")");
    const int64_t chunk = req.chunk > 0 ? req.chunk : std::max<int64_t>(n, 1);
    std::vector<std::vector<float>> rows_out(req.logits_positions.size());
    const auto t_start = std::chrono::steady_clock::now();
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        if (req.cancel && req.cancel->load()) return Status(ErrorCode::cancelled, "prefill cancelled after " + std::to_string(c0) + " tokens");
        const int64_t len = std::min(chunk, n - c0);
        std::vector<int64_t> rows;
        std::vector<size_t> which;
        for (size_t i = 0; i < req.logits_positions.size(); ++i) {
            const int64_t local = req.logits_positions[i] - start - c0;
            if (local >= 0 && local < len) {
                rows.push_back(local);
                which.push_back(i);
            }
        }
        std::vector<std::vector<float>> got;
        QUIRE_TRY(forward(req.tokens.data() + c0, len, request_end, rows, &got));
        for (size_t i = 0; i < which.size(); ++i) rows_out[which[i]] = std::move(got[i]);
        counters.prefilled_tokens += len;
        if (req.on_progress)
            req.on_progress({c0 + len, n, std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()});
    }
    if (logits) *logits = std::move(rows_out);
    return Status::ok();
}

}  // namespace quire
