#pragma once
// The generation loop: prefill the prompt, then sample and decode token by token, streaming whole
// UTF-8 characters, until a stop token, the token limit or a cancel.

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine.h"
#include "sampler.h"

namespace quire {

struct GenerateOptions {
    SamplingOptions sampling;
    int64_t max_tokens = 512;
    std::vector<int32_t> stop_ids;  // default: the config's eos ids (</s>, <|im_end|>)
    int64_t prefill_chunk = 2048;
    std::function<void(const std::string& delta)> on_text;
    const std::atomic<bool>* cancel = nullptr;
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated tokens, the stop token excluded
    std::string text;
    std::string stop_reason;      // "stop token", "max tokens", "cancelled"
    double first_token_seconds = 0;
    double tokens_per_second = 0;
};

// Feeds `prompt` to seq (which may already hold a prefix) and generates after it. Every generated
// token except a final stop token is fed back, so seq ends holding the whole answer.
Result<GenerateResult> generate(Engine& engine, Sequence& seq, std::span<const int32_t> prompt, const GenerateOptions& options);

}  // namespace quire
