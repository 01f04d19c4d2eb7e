#pragma once
// The chunked prefill both backends share: checks the requested logit positions, feeds the request
// chunk by chunk through a backend's forward step, stops between chunks on cancel, reports progress
// and counts the work.

#include <functional>
#include <vector>

#include "engine.h"

namespace quire {

// forward(ids, n, request_end, rows, logits): runs n tokens, appending the logits of the chunk-local
// `rows` to *logits.
using ForwardStep = std::function<Status(const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                                         std::vector<std::vector<float>>* logits)>;

Status run_chunked_prefill(const PrefillRequest& request, int64_t start, const ForwardStep& forward, EngineCounters& counters,
                           std::vector<std::vector<float>>* logits);

}  // namespace quire
