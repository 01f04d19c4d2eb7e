#include "gpu_fit_report.h"

#include "model_info.h"

namespace quire {

std::vector<int64_t> fit_report_sizes() { return {131072, 524288, 1048576}; }

std::string short_tokens(int64_t tokens) {
    if (tokens >= (1 << 20) && tokens % (1 << 20) == 0) return std::to_string(tokens >> 20) + "M";
    if (tokens >= 1024) return std::to_string(tokens / 1024) + "K";
    return std::to_string(tokens);
}

std::vector<FitRow> fit_rows(const ModelConfig& config, const WeightFormat& folder_format, int64_t budget, int64_t chunk) {
    std::vector<std::pair<WeightFormat, bool>> formats{{folder_format, false}};
    if (!folder_format.quantized())
        for (const int bits : {8, 4}) formats.push_back({WeightFormat::gptq(bits, 128, WeightFormat::sala_gate_skips()), true});
    std::vector<FitRow> rows;
    for (const auto& [format, after] : formats) {
        FitRow r;
        r.format = format;
        r.after_quantize = after;
        r.weights = gpu_weight_bytes(config, format);
        r.longest = longest_context_within(config, format, budget, chunk);
        for (const int64_t n : fit_report_sizes()) {
            const int64_t bytes = plan_gpu_memory(config, format, n, chunk).total();
            r.sizes.push_back({n, bytes, bytes <= budget});
        }
        rows.push_back(r);
    }
    return rows;
}

std::string format_fit_report(const std::vector<FitRow>& rows, int64_t budget) {
    std::string out = "GPU memory budget " + format_gib(budget) + " (weights + state + workspace of 8,192-token chunks + " +
                      format_gib(kCudaContextBytes) + " of CUDA context):\n";
    for (const FitRow& r : rows) {
        out += "  " + r.format.name() + (r.after_quantize ? ", after quire quantize" : "") + ": weights " + format_gib(r.weights) + "; ";
        if (r.longest == 0) {
            out += "won't fit at any context (" + (r.weights > budget ? "the weights alone need " + format_gib(r.weights)
                                                                        : "weights and workspace need more than the budget") + ")\n";
        } else {
            out += "longest context " + with_thousands(r.longest) + " tokens\n";
        }
        for (const FitRow::Size& s : r.sizes)
            out += "    " + short_tokens(s.tokens) + ": " + (s.fits ? "fits" : "won't fit") + " (needs " + format_gib(s.bytes) + ")\n";
    }
    return out;
}

}  // namespace quire
