#include "generator.h"

#include <algorithm>
#include <chrono>

#include "text_stream.h"

namespace quire {

Result<GenerateResult> generate(Engine& engine, Sequence& seq, std::span<const int32_t> prompt, const GenerateOptions& options) {
    const Tokenizer* tok = engine.model().tokenizer();
    if (!tok) return Status(ErrorCode::invalid_tokenizer, "the model folder has no tokenizer; cannot generate text");
    if (prompt.empty()) return Status(ErrorCode::invalid_argument, "the prompt is empty");
    std::vector<int32_t> stops = options.stop_ids;
    if (stops.empty())
        for (int64_t e : engine.model().config().eos_token_ids) stops.push_back(static_cast<int32_t>(e));

    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    PrefillRequest req;
    req.tokens = prompt;
    req.chunk = options.prefill_chunk;
    req.logits_positions = {seq.length() + static_cast<int64_t>(prompt.size()) - 1};
    req.cancel = options.cancel;
    std::vector<std::vector<float>> rows;
    GenerateResult result;
    if (Status st = engine.prefill(seq, req, &rows); !st) {
        if (st.code() != ErrorCode::cancelled) return st;
        result.stop_reason = "cancelled";
        return result;
    }
    Sampler sampler(options.sampling);
    TextStream stream(*tok);
    double decode_start = 0;
    int32_t next = sampler.sample(std::move(rows[0]), seq.tokens());
    while (true) {
        if (options.cancel && options.cancel->load()) {
            result.stop_reason = "cancelled";
            break;
        }
        if (result.tokens.empty()) {
            result.first_token_seconds = seconds();
            decode_start = result.first_token_seconds;
        }
        if (std::find(stops.begin(), stops.end(), next) != stops.end()) {
            result.stop_reason = "stop token";
            break;
        }
        result.tokens.push_back(next);
        if (std::string delta = stream.push(next); !delta.empty() && options.on_text) options.on_text(delta);
        if (static_cast<int64_t>(result.tokens.size()) >= options.max_tokens) {
            QUIRE_TRY(engine.decode(seq, next, nullptr));  // fed back; nothing more is drawn
            result.stop_reason = "max tokens";
            break;
        }
        Result<int32_t> drawn = engine.decode_and_sample(seq, next, sampler);
        if (!drawn) return drawn.status();
        next = drawn.value();
    }
    if (std::string rest = stream.flush(); !rest.empty() && options.on_text) options.on_text(rest);
    result.text = stream.text();
    const double decode_time = seconds() - decode_start;
    if (result.tokens.size() > 1 && decode_time > 0)
        result.tokens_per_second = static_cast<double>(result.tokens.size() - 1) / decode_time;
    return result;
}

Result<int32_t> Engine::decode_and_sample(Sequence& seq, int32_t token, Sampler& sampler) {
    std::vector<float> logits;
    QUIRE_TRY(decode(seq, token, &logits));
    return sampler.sample(std::move(logits), seq.tokens());
}

}  // namespace quire
