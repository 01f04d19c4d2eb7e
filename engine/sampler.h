#pragma once
// Picks the next token from logits: repetition penalty, then greedy (temperature 0) or
// temperature -> top-k -> top-p -> min-p sampling with a seeded generator (same seed, same text).

#include <cstdint>
#include <random>
#include <vector>

namespace quire {

struct SamplingOptions {
    float temperature = 0.0f;  // 0: greedy
    int64_t top_k = 0;         // 0: off
    float top_p = 1.0f;        // 1: off
    float min_p = 0.0f;        // 0: off; keeps tokens with p >= min_p * p_max
    float repetition_penalty = 1.0f;  // CTRL-style (Keskar et al. 2019): >1 discourages repeats
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplingOptions& options);
    // history: tokens already in the context (for the repetition penalty).
    int32_t sample(std::vector<float> logits, const std::vector<int32_t>& history);
    const SamplingOptions& options() const { return options_; }
    // The uniform draw in [0, 1) that sample() would make next (it makes one per call with a
    // temperature above 0, none when greedy): for a backend that samples on its device with the same
    // rules (kernels/sampling.h), so the same seed draws the same tokens.
    double next_uniform() { return uniform(); }

private:
    double uniform();
    SamplingOptions options_;
    std::mt19937_64 rng_;
};

}  // namespace quire
