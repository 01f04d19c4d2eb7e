#pragma once
// Helpers for engine tests: load a tiny model into an engine, run a token sequence the ways the
// invariance tests compare (one shot, chunked, prefill then decode), and measure differences.

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "engine.h"
#include "test_support.h"

namespace quire::test {

inline std::shared_ptr<const Model> load_model(const std::string& dir) {
    auto m = Model::load(dir);
    if (!m) qFatal("cannot load %s: %s", dir.c_str(), m.status().message().c_str());
    return m.value();
}

inline std::unique_ptr<Engine> make_engine(std::shared_ptr<const Model> model, Precision precision,
                                           RegimeRule regime = RegimeRule::per_query) {
    EngineOptions o;
    o.precision = precision;
    o.regime = regime;
    auto e = create_engine(std::move(model), Backend::cpu, o);
    if (!e) qFatal("%s", e.status().message().c_str());
    return std::move(e.value());
}

// Deterministic pseudo-random token ids in [3, vocab - 8): no special tokens.
inline std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& id : t) id = static_cast<int32_t>(3 + rng() % static_cast<uint64_t>(vocab - 11));
    return t;
}

using Rows = std::map<int64_t, std::vector<float>>;

// `tokens` is the whole sequence; the part not yet in seq, [seq.length(), decode_from), is fed as a
// prefill in chunks of `chunk` (0: one shot), then the rest one token at a time. Returns the
// logits at `positions` (absolute).
inline Rows run_sequence(Engine& engine, Sequence& seq, const std::vector<int32_t>& tokens, int64_t chunk,
                         int64_t decode_from, const std::vector<int64_t>& positions) {
    Rows rows;
    const int64_t start = seq.length();
    PrefillRequest req;
    req.tokens = std::span<const int32_t>(tokens.data() + start, static_cast<size_t>(decode_from - start));
    req.chunk = chunk;
    for (int64_t p : positions)
        if (p >= start && p < decode_from) req.logits_positions.push_back(p);
    if (!req.tokens.empty()) {
        std::vector<std::vector<float>> got;
        const Status st = engine.prefill(seq, req, &got);
        if (!st) qFatal("prefill failed: %s", st.message().c_str());
        for (size_t i = 0; i < got.size(); ++i) rows[req.logits_positions[i]] = got[i];
    }
    for (int64_t p = decode_from; p < static_cast<int64_t>(tokens.size()); ++p) {
        std::vector<float> l;
        const Status st = engine.decode(seq, tokens[static_cast<size_t>(p)], &l);
        if (!st) qFatal("decode failed: %s", st.message().c_str());
        if (std::find(positions.begin(), positions.end(), p) != positions.end()) rows[p] = l;
    }
    return rows;
}

inline Rows run_fresh(Engine& engine, const std::vector<int32_t>& tokens, int64_t chunk, int64_t decode_from,
                      const std::vector<int64_t>& positions) {
    auto seq = engine.new_sequence();
    return run_sequence(engine, *seq, tokens, chunk, decode_from, positions);
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    float m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
}

// ||a - b|| / ||b||
inline double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return std::sqrt(num / std::max(den, 1e-30));
}

inline int64_t argmax(const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

// Difference between the largest and second-largest logit.
inline float top_margin(const std::vector<float>& v) {
    std::vector<float> s = v;
    std::partial_sort(s.begin(), s.begin() + 2, s.end(), std::greater<float>());
    return s[0] - s[1];
}

inline bool all_finite(const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace quire::test
