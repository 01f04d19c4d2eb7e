#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace quire {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

int32_t Sampler::sample(std::vector<float> logits, const std::vector<int32_t>& history) {
    const auto n = static_cast<int64_t>(logits.size());
    if (options_.repetition_penalty != 1.0f) {
        std::unordered_set<int32_t> seen(history.begin(), history.end());
        for (int32_t id : seen)
            if (id >= 0 && id < n) {
                float& l = logits[static_cast<size_t>(id)];
                l = l > 0 ? l / options_.repetition_penalty : l * options_.repetition_penalty;
            }
    }
    if (options_.temperature <= 0.0f) {  // greedy; ties go to the lower id
        return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    auto by_logit = [&](int32_t a, int32_t b) {
        const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
        return la != lb ? la > lb : a < b;
    };
    int64_t keep = n;
    if (options_.top_k > 0 && options_.top_k < n) {
        keep = options_.top_k;
        std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
    } else {
        std::sort(order.begin(), order.end(), by_logit);
    }
    std::vector<double> p(static_cast<size_t>(keep));
    const double top = logits[static_cast<size_t>(order[0])] / options_.temperature;
    double z = 0;
    for (int64_t i = 0; i < keep; ++i) {
        p[static_cast<size_t>(i)] = std::exp(logits[static_cast<size_t>(order[static_cast<size_t>(i)])] / options_.temperature - top);
        z += p[static_cast<size_t>(i)];
    }
    for (auto& v : p) v /= z;
    if (options_.top_p < 1.0f) {
        double cum = 0;
        int64_t cut = keep;
        for (int64_t i = 0; i < keep; ++i) {
            cum += p[static_cast<size_t>(i)];
            if (cum >= options_.top_p) {
                cut = i + 1;
                break;
            }
        }
        keep = cut;
    }
    if (options_.min_p > 0.0f) {
        int64_t cut = 1;
        while (cut < keep && p[static_cast<size_t>(cut)] >= options_.min_p * p[0]) ++cut;
        keep = cut;
    }
    double total = 0;
    for (int64_t i = 0; i < keep; ++i) total += p[static_cast<size_t>(i)];
    double u = uniform() * total;
    for (int64_t i = 0; i < keep; ++i) {
        u -= p[static_cast<size_t>(i)];
        if (u <= 0) return order[static_cast<size_t>(i)];
    }
    return order[static_cast<size_t>(keep - 1)];
}

}  // namespace quire
