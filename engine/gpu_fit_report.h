#pragma once
// "Fits / won't fit" for a model folder under a GPU memory budget, per precision: the folder's own
// (bf16, or its GPTQ bits) and, for a bf16 folder, what INT8 and INT4 would allow after
// `quire quantize`; for each, the longest context that fits and the library sizes 128K, 512K and 1M.
// Shared by `quire model-info --gpu-memory` and the window's Settings page.

#include <cstdint>
#include <string>
#include <vector>

#include "gpu_memory_plan.h"

namespace quire {

struct FitRow {
    WeightFormat format;
    bool after_quantize = false;  // not in the folder: what `quire quantize` would make
    int64_t weights = 0;
    int64_t longest = 0;  // tokens; 0: not even a tiny context fits
    struct Size {
        int64_t tokens = 0, bytes = 0;
        bool fits = false;
    };
    std::vector<Size> sizes;  // 128K, 512K, 1M
};

// The library sizes the report checks.
std::vector<int64_t> fit_report_sizes();
std::vector<FitRow> fit_rows(const ModelConfig& config, const WeightFormat& folder_format, int64_t budget_bytes,
                             int64_t chunk = kDefaultPlanChunk);
// The rows as text, one precision per paragraph.
std::string format_fit_report(const std::vector<FitRow>& rows, int64_t budget_bytes);
// "128K", "1M", "469K"
std::string short_tokens(int64_t tokens);

}  // namespace quire
