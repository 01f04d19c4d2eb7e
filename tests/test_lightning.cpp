// Lightning attention: the chunked form equals the token-by-token recurrence (docs/model.md §4), for
// any split of the sequence into calls, and the thread pool runs every item exactly once.
#include <QtTest>

#include <atomic>
#include <random>

#include "cpu/lightning_attention.h"
#include "cpu/thread_pool.h"

using namespace quire::cpu;

class TestLightning : public QObject {
    Q_OBJECT
private slots:
    void chunked_equals_recurrence() {
        const int64_t T = 300, H = 3, dk = 32, dv = 48;
        std::mt19937_64 rng(9);
        std::normal_distribution<float> dist(0.f, 0.3f);
        std::vector<float> q(T * H * dk), k(T * H * dk), v(T * H * dv);
        for (auto* x : {&q, &k, &v})
            for (auto& e : *x) e = dist(rng);
        const auto slopes = alibi_slopes(H);
        // Reference: the plain recurrence in double.
        std::vector<double> S(H * dk * dv, 0.0), ref(T * H * dv);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t h = 0; h < H; ++h) {
                const double gamma = std::exp(-slopes[h]);
                double* s = &S[h * dk * dv];
                for (int64_t r = 0; r < dk; ++r)
                    for (int64_t c = 0; c < dv; ++c) s[r * dv + c] = gamma * s[r * dv + c] + double(k[(t * H + h) * dk + r]) * v[(t * H + h) * dv + c];
                for (int64_t c = 0; c < dv; ++c) {
                    double o = 0;
                    for (int64_t r = 0; r < dk; ++r) o += double(q[(t * H + h) * dk + r]) * s[r * dv + c];
                    ref[(t * H + h) * dv + c] = o / std::sqrt(double(dk));
                }
            }
        ThreadPool pool(2);
        for (int64_t split : {int64_t(300), int64_t(1), int64_t(50), int64_t(64), int64_t(77)}) {
            std::vector<float> state(H * dk * dv, 0.f), out(T * H * dv);
            for (int64_t t0 = 0; t0 < T; t0 += split) {
                const int64_t n = std::min(split, T - t0);
                lightning_attention(pool, &q[t0 * H * dk], &k[t0 * H * dk], &v[t0 * H * dv], n, t0, H, dk, dv, slopes,
                                    state.data(), &out[t0 * H * dv]);
            }
            double worst = 0;
            for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::fabs(out[i] - ref[i]));
            QVERIFY2(worst < 1e-4, qPrintable(QString("split %1: %2").arg(split).arg(worst)));
        }
    }
    void thread_pool_runs_each_item_once() {
        ThreadPool pool(4);
        for (int round = 0; round < 2000; ++round) {
            const int64_t n = 1 + (round * 7919) % 97;
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            pool.parallel_for(n, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
            for (auto& h : hits) QCOMPARE(h.load(), 1);
        }
    }
};

QTEST_APPLESS_MAIN(TestLightning)
#include "test_lightning.moc"
