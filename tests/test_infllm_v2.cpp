// InfLLM-v2 building blocks against their definitions (docs/model.md §3.2-3.5).
#include <QtTest>

#include <algorithm>
#include <limits>
#include <random>

#include "bf16.h"
#include "cpu/infllm_v2.h"
#include "cpu/lightning_attention.h"

using namespace quire;
using namespace quire::cpu;

namespace {
SparseGeometry geometry(int64_t kv_heads, int64_t d, int64_t group) {
    SparseGeometry g;
    g.kv_heads = kv_heads;
    g.head_dim = d;
    g.group = group;
    return g;  // defaults are the real model's: blocks of 64, C1 32/16, C2 128/64, 1 init, 32 local, top 96
}
PagedRows random_keys(int64_t n, int64_t width, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> dist;
    PagedRows k(width);
    std::vector<float> row(static_cast<size_t>(width));
    for (int64_t t = 0; t < n; ++t) {
        for (auto& v : row) v = round_bf16(dist(rng));
        k.append(row.data());
    }
    return k;
}
}  // namespace

class TestInfllmV2 : public QObject {
    Q_OBJECT
private slots:
    void compressed_keys_are_window_means() {
        const SparseGeometry g = geometry(2, 64, 2);
        const PagedRows k = random_keys(1000, 128, 1);
        PagedRows c1(128), c2(128);
        update_compressed_keys(k, 1000, g, false, c1, c2);
        QCOMPARE(c1.size(), int64_t((1000 - 32) / 16 + 1));
        QCOMPARE(c2.size(), int64_t((1000 - 128) / 64 + 1));
        for (int64_t i : {int64_t(0), int64_t(7), c1.size() - 1}) {
            double mean = 0;
            for (int64_t t = 16 * i; t < 16 * i + 32; ++t) mean += k.row(t)[5];
            QVERIFY(std::fabs(mean / 32 - c1.row(i)[5]) < 1e-5);
        }
        double mean2 = 0;
        for (int64_t t = 64 * 3; t < 64 * 3 + 128; ++t) mean2 += k.row(t)[70];
        QVERIFY(std::fabs(mean2 / 128 - c2.row(3)[70]) < 1e-5);
        // Incremental maintenance equals computing from scratch.
        PagedRows i1(128), i2(128);
        for (int64_t n = 1; n <= 1000; n += 37) update_compressed_keys(k, n, g, true, i1, i2);
        update_compressed_keys(k, 1000, g, true, i1, i2);
        PagedRows r1(128), r2(128);
        update_compressed_keys(k, 1000, g, true, r1, r2);
        QCOMPARE(i1.size(), r1.size());
        for (int64_t i = 0; i < r1.size(); ++i) QCOMPARE(std::memcmp(i1.row(i), r1.row(i), 128 * 4), 0);
    }
    void visibility_is_whole_windows_in_the_past() {
        const SparseGeometry g = geometry(1, 64, 1);
        QCOMPARE(visible_c1(30, g), int64_t(0));
        QCOMPARE(visible_c1(31, g), int64_t(1));   // keys 0..31 complete at p = 31
        QCOMPARE(visible_c1(46, g), int64_t(1));
        QCOMPARE(visible_c1(47, g), int64_t(2));
        QCOMPARE(visible_c2(126, g), int64_t(0));
        QCOMPARE(visible_c2(127, g), int64_t(1));
        QCOMPARE(visible_c2(190, g), int64_t(1));
        QCOMPARE(visible_c2(191, g), int64_t(2));
    }
    void stage1_matches_definition() {
        const SparseGeometry g = geometry(2, 64, 3);
        const PagedRows k = random_keys(3000, 128, 2);
        PagedRows c1(128), c2(128);
        update_compressed_keys(k, 3000, g, false, c1, c2);
        std::mt19937_64 rng(3);
        std::normal_distribution<float> dist;
        std::vector<float> q(3 * 64);
        for (auto& v : q) v = dist(rng);
        std::vector<float> scores;
        const int64_t p = 2500, kv = 1;
        stage1_scores(q.data(), c1, c2, kv, p, g, false, scores);
        QCOMPARE(static_cast<int64_t>(scores.size()), visible_c1(p, g));
        const double s = 1.0 / 8.0;
        for (int64_t i : {int64_t(0), int64_t(40), static_cast<int64_t>(scores.size()) - 1}) {
            double want = 0;
            for (int h = 0; h < 3; ++h) {
                double m = -1e300;
                std::vector<double> l2;
                for (int64_t j = 0; j < visible_c2(p, g); ++j) {
                    double dot = 0;
                    for (int c = 0; c < 64; ++c) dot += double(q[h * 64 + c]) * c2.row(j)[kv * 64 + c];
                    l2.push_back(s * dot);
                    m = std::max(m, s * dot);
                }
                double z = 0;
                for (double v : l2) z += std::exp(v - m);
                double dot1 = 0;
                for (int c = 0; c < 64; ++c) dot1 += double(q[h * 64 + c]) * c1.row(i)[kv * 64 + c];
                want += std::exp(s * dot1 - m) / z;
            }
            QVERIFY2(std::fabs(want - scores[static_cast<size_t>(i)]) < 1e-4 * std::max(1.0, want), qPrintable(QString::number(i)));
        }
        // No coarse key visible yet: an all-zero row.
        stage1_scores(q.data(), c1, c2, kv, 100, g, false, scores);
        QCOMPARE(static_cast<int64_t>(scores.size()), visible_c1(100, g));
        for (float v : scores) QCOMPARE(v, 0.0f);
    }
    void selection_rules() {
        const SparseGeometry g = geometry(1, 64, 1);
        // Up to 96 blocks: everything up to the query block.
        std::vector<float> few(static_cast<size_t>(visible_c1(96 * 64 - 1, g)), 0.5f);
        QCOMPARE(select_blocks(few, 96 * 64 - 1, g).size(), size_t(96));
        // Beyond: block 0 + 33 local blocks + the 62 best scored, never a future block.
        const int64_t p = 300 * 64 + 17, qb = 300;
        std::vector<float> scores(static_cast<size_t>(visible_c1(p, g)));
        std::mt19937_64 rng(4);
        for (auto& v : scores) v = round_bf16(static_cast<float>(rng() % 1000) / 1000.0f);
        float margin = -1;
        const auto sel = select_blocks(scores, p, g, &margin);
        QCOMPARE(sel.size(), size_t(96));
        QVERIFY(std::is_sorted(sel.begin(), sel.end()));
        QCOMPARE(sel.front(), int64_t(0));
        for (int64_t b = qb - 32; b <= qb; ++b) QVERIFY(std::binary_search(sel.begin(), sel.end(), b));
        QVERIFY(sel.back() == qb);
        // Every rejected candidate scores no higher than every chosen one (pooled max of 4b-1..4b+3).
        auto pooled = [&](int64_t b) {
            float m = -1;
            for (int64_t i = std::max<int64_t>(0, 4 * b - 1); i <= 4 * b + 3; ++i) m = std::max(m, scores[static_cast<size_t>(i)]);
            return m;
        };
        float worst_chosen = 2, best_rejected = -1;
        for (int64_t b = 1; b < qb - 32; ++b) {
            if (std::binary_search(sel.begin(), sel.end(), b)) worst_chosen = std::min(worst_chosen, pooled(b));
            else best_rejected = std::max(best_rejected, pooled(b));
        }
        QVERIFY(worst_chosen >= best_rejected);
        QVERIFY(margin >= 0);
    }
    void ties_go_to_the_lower_block() {
        const SparseGeometry g = geometry(1, 64, 1);
        const int64_t p = 200 * 64;
        std::vector<float> scores(static_cast<size_t>(visible_c1(p, g)), 0.25f);  // every block tied
        float margin = -1;
        const auto sel = select_blocks(scores, p, g, &margin);
        // Forced: 0 and 168..200; the 62 others are the lowest-indexed: 1..62.
        std::vector<int64_t> want;
        for (int64_t b = 0; b <= 62; ++b) want.push_back(b);
        for (int64_t b = 168; b <= 200; ++b) want.push_back(b);
        QCOMPARE(sel, want);
        QCOMPARE(margin, 0.0f);
    }
    // NaN and negative pooled scores (broken weights) rank with -inf, as on the GPU: a defined
    // order (no undefined behaviour in the sort), lower blocks first among them.
    void nan_and_negative_scores_rank_lowest() {
        const SparseGeometry g = geometry(1, 64, 1);
        const int64_t p = 200 * 64, blocks = p / g.block + 1;
        std::vector<float> pooled(static_cast<size_t>(blocks));
        for (int64_t b = 0; b < blocks; ++b) {
            const int kind = static_cast<int>(b % 4);
            pooled[static_cast<size_t>(b)] = kind == 0   ? std::numeric_limits<float>::quiet_NaN()
                                             : kind == 1 ? -0.5f
                                             : kind == 2 ? -std::numeric_limits<float>::infinity()
                                                         : 0.001f * static_cast<float>(b);
        }
        const auto sel = select_from_block_scores(pooled, p, g);
        // Forced: 0 and 168..200. The 62 others: the 42 positive ones among 1..167 (b % 4 == 3,
        // 3..167) first, then the 20 lowest-indexed of the rest (1, 2, 4, 5, 6, 8, ...).
        std::vector<int64_t> want{0};
        for (int64_t b = 3; b < 168; b += 4) want.push_back(b);
        int64_t rest = 62 - static_cast<int64_t>(want.size() - 1);
        for (int64_t b = 1; b < 168 && rest > 0; ++b)
            if (b % 4 != 3) want.push_back(b), --rest;
        for (int64_t b = 168; b <= 200; ++b) want.push_back(b);
        std::sort(want.begin(), want.end());
        QCOMPARE(sel, want);
        // The same with NaN everywhere outside the forced blocks: the lowest-indexed 62.
        std::vector<float> all_nan(static_cast<size_t>(blocks), std::numeric_limits<float>::quiet_NaN());
        std::vector<int64_t> low;
        for (int64_t b = 0; b <= 62; ++b) low.push_back(b);
        for (int64_t b = 168; b <= 200; ++b) low.push_back(b);
        QCOMPARE(select_from_block_scores(all_nan, p, g), low);
    }

    void alibi_slopes_match_spec() {
        // docs/model.md §1: slope_h = 2^(-(h+1)/4) for 32 heads; gamma = exp(-slope).
        const auto s = alibi_slopes(32);
        QCOMPARE(s.size(), size_t(32));
        const double gammas[][2] = {{0, 0.431324}, {1, 0.493069}, {3, 0.606531}, {7, 0.778801}, {15, 0.939413}, {23, 0.984496}, {31, 0.996101}};
        for (const auto& [h, gamma] : gammas) QVERIFY(std::fabs(std::exp(-s[static_cast<size_t>(h)]) - gamma) < 1e-6);
        // Non-power-of-two head counts follow the ALiBi reference construction.
        const auto s6 = alibi_slopes(6);
        const auto s4 = alibi_slopes(4), s8 = alibi_slopes(8);
        QCOMPARE(s6[0], s4[0]);
        QCOMPARE(s6[3], s4[3]);
        QCOMPARE(s6[4], s8[0]);
        QCOMPARE(s6[5], s8[2]);
    }
};

QTEST_APPLESS_MAIN(TestInfllmV2)
#include "test_infllm_v2.moc"
