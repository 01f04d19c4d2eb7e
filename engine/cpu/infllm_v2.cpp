#include "cpu/infllm_v2.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bf16.h"
#include "cpu/vec_math.h"

namespace quire::cpu {

namespace {

void append_means(const PagedRows& k, int64_t target, int64_t kernel, int64_t stride, bool round, PagedRows& c) {
    std::vector<float> acc(static_cast<size_t>(k.width()));
    while (c.size() < target) {
        const int64_t i = c.size();
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t t = i * stride; t < i * stride + kernel; ++t) axpy(acc.data(), 1.0f, k.row(t), k.width());
        for (auto& a : acc) {
            a /= static_cast<float>(kernel);
            if (round) a = round_bf16(a);
        }
        c.append(acc.data());
    }
}
}  // namespace

void update_compressed_keys(const PagedRows& k, int64_t n_keys, const SparseGeometry& g, bool round, PagedRows& c1,
                            PagedRows& c2) {
    append_means(k, g.c1_entries(n_keys), g.c1_kernel, g.c1_stride, round, c1);
    append_means(k, g.c2_entries(n_keys), g.c2_kernel, g.c2_stride, round, c2);
}

int64_t visible_c1(int64_t p, const SparseGeometry& g) { return g.c1_entries(p + 1); }
int64_t visible_c2(int64_t p, const SparseGeometry& g) { return g.c2_entries(p + 1); }

void stage1_scores(const float* q, const PagedRows& c1, const PagedRows& c2, int64_t kv, int64_t p,
                   const SparseGeometry& g, bool round, std::vector<float>& scores) {
    const int64_t n1 = visible_c1(p, g), n2 = visible_c2(p, g), d = g.head_dim;
    scores.assign(static_cast<size_t>(n1), 0.0f);
    if (n2 == 0) return;  // no coarse key yet: the kernel leaves the row at zero
    const float s = 1.0f / std::sqrt(static_cast<float>(d));
    std::vector<float> logits2(static_cast<size_t>(n2));
    for (int64_t h = 0; h < g.group; ++h) {
        const float* qh = q + h * d;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < n2; ++j) {
            logits2[static_cast<size_t>(j)] = s * dot(qh, c2.row(j) + kv * d, d);
            m = std::max(m, logits2[static_cast<size_t>(j)]);
        }
        float z = 0.0f;
        for (int64_t j = 0; j < n2; ++j) z += std::exp(logits2[static_cast<size_t>(j)] - m);
        for (int64_t i = 0; i < n1; ++i)
            scores[static_cast<size_t>(i)] += std::exp(s * dot(qh, c1.row(i) + kv * d, d) - m) / z;
    }
    if (round)
        for (auto& v : scores) v = round_bf16(v);
}

std::vector<float> pool_block_scores(const std::vector<float>& scores, int64_t p, const SparseGeometry& g) {
    const int64_t blocks = p / g.block + 1;
    const int64_t f = g.block / g.c1_stride;  // C1 entries per block (4)
    const auto n1 = static_cast<int64_t>(scores.size());
    std::vector<float> pooled(static_cast<size_t>(blocks));
    for (int64_t b = 0; b < blocks; ++b) {
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t i = std::max<int64_t>(0, b * f - 1); i <= std::min(n1 - 1, b * f + f - 1); ++i)
            best = std::max(best, scores[static_cast<size_t>(i)]);
        pooled[static_cast<size_t>(b)] = best;
    }
    return pooled;
}

std::vector<int64_t> select_from_block_scores(const std::vector<float>& pooled, int64_t p, const SparseGeometry& g, float* margin) {
    const int64_t qb = p / g.block;
    const int64_t blocks = qb + 1;  // blocks after qb are never selected
    std::vector<int64_t> sel;
    if (margin) *margin = std::numeric_limits<float>::infinity();
    if (blocks <= g.total_topk) {
        for (int64_t b = 0; b < blocks; ++b) sel.push_back(b);
        return sel;
    }
    std::vector<std::pair<float, int64_t>> candidates;
    for (int64_t b = 0; b < blocks; ++b) {
        const bool forced = b < g.init_blocks || b >= qb - g.local_blocks;
        if (forced) {
            if (static_cast<int64_t>(sel.size()) < g.total_topk) sel.push_back(b);  // lower index first
            continue;
        }
        // Ranked as the GPU's selection ranks them (select_common.cuh): NaN and negative scores
        // (which softmax sums never are, but broken weights can give) tie with -inf, so the order
        // below stays a strict weak ordering and both backends choose the same blocks.
        const float score = pooled[static_cast<size_t>(b)];
        candidates.emplace_back(score >= 0.0f ? score : -std::numeric_limits<float>::infinity(), b);
    }
    const int64_t want = std::min<int64_t>(g.total_topk - static_cast<int64_t>(sel.size()), static_cast<int64_t>(candidates.size()));
    if (want > 0) {
        std::partial_sort(candidates.begin(), candidates.begin() + want, candidates.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        for (int64_t i = 0; i < want; ++i) sel.push_back(candidates[static_cast<size_t>(i)].second);
        if (margin && want < static_cast<int64_t>(candidates.size())) {
            float rejected = -std::numeric_limits<float>::infinity();
            for (size_t i = static_cast<size_t>(want); i < candidates.size(); ++i) rejected = std::max(rejected, candidates[i].first);
            const float lowest = candidates[static_cast<size_t>(want - 1)].first;
            *margin = lowest > 0 ? (lowest - rejected) / lowest : 0.0f;
        }
    }
    std::sort(sel.begin(), sel.end());
    return sel;
}

std::vector<int64_t> select_blocks(const std::vector<float>& scores, int64_t p, const SparseGeometry& g, float* margin) {
    if (p / g.block + 1 <= g.total_topk) return select_from_block_scores({}, p, g, margin);
    return select_from_block_scores(pool_block_scores(scores, p, g), p, g, margin);
}

}  // namespace quire::cpu
