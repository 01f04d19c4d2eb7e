// The reading ETA on synthetic progress curves: per-token cost rising with the position, with and
// without a measured prior, against the naive "current rate" extrapolation; and on the benchmark
// table of the real model (docs/benchmarks.md), from about 10 % progress on.
#include <QtTest>

#include <cmath>

#include "session/read_eta.h"

using namespace quire::app;

namespace {

// Feeds `eta` the progress of a read from `start` to `end` in chunks of `chunk` tokens whose true
// cost is `truth` (times `slowdown`), up to `upto`, and returns the relative error of its ETA there.
double etaError(ReadEta& eta, const ReadCostModel& truth, double slowdown, qint64 start, qint64 end, qint64 chunk, qint64 upto) {
    qint64 at = start;
    while (at < upto) {
        at = std::min(at + chunk, end);
        eta.add(at, slowdown * truth.seconds(double(start), double(at)));
    }
    const double real = slowdown * truth.seconds(double(at), double(end));
    return (eta.remainingSeconds() - real) / real;
}

double naiveError(const ReadCostModel& truth, qint64 start, qint64 end, qint64 at) {
    const double elapsed = truth.seconds(double(start), double(at));
    const double naive = elapsed / double(at - start) * double(end - at);
    const double real = truth.seconds(double(at), double(end));
    return (naive - real) / real;
}

}  // namespace

class TestReadEta : public QObject {
    Q_OBJECT

private slots:
    void fits_a_rising_cost_exactly() {
        const ReadCostModel truth{4e-5, 6e-11};
        QList<QPair<qint64, double>> points;
        for (qint64 n = 2048; n <= 1 << 20; n += 2048) points.append({n, truth.seconds(0, double(n))});
        const ReadCostModel fit = fitCostModel(0, points);
        QVERIFY(std::abs(fit.a - truth.a) / truth.a < 1e-6);
        QVERIFY(std::abs(fit.b - truth.b) / truth.b < 1e-6);
        // A flat cost gives b = 0, not a negative one.
        QList<QPair<qint64, double>> flat;
        for (qint64 n = 1000; n <= 100000; n += 1000) flat.append({n, 1e-4 * double(n)});
        const ReadCostModel f = fitCostModel(0, flat);
        QCOMPARE(f.b, 0.0);
        QVERIFY(std::abs(f.a - 1e-4) < 1e-9);
        QVERIFY(!fitCostModel(0, {}).valid());
        QCOMPARE(ReadCostModel::fromString(truth.toString()).a, truth.a);
        QVERIFY(!ReadCostModel::fromString("x 1").valid());
        QVERIFY(!ReadCostModel::fromString("-1 2").valid());
    }

    void honest_from_ten_percent_with_a_measured_prior() {
        // The prior measured on this machine; this read runs 1.7 times slower (a busier machine).
        const ReadCostModel truth{3e-5, 8e-11};
        for (const qint64 end : {qint64(131072), qint64(1048576)}) {
            ReadEta eta(0, end, truth);
            QVERIFY(eta.remainingSeconds() < 0);  // nothing measured yet
            const double err = etaError(eta, truth, 1.7, 0, end, 2048, end / 10);
            qInfo("end %lld: ETA error at 10 %% %.2f %%, current-rate extrapolation %.1f %%", static_cast<long long>(end), 100 * err,
                  100 * naiveError(truth, 0, end, end / 10));
            QVERIFY(std::abs(err) < 0.01);
        }
        // The naive extrapolation is far off at 1M: the reason for the model.
        QVERIFY(naiveError(truth, 0, 1 << 20, (1 << 20) / 10) < -0.3);
    }

    void reading_the_rest_of_a_library_counts_from_its_position() {
        // A saved state covers 600K tokens; 400K more are read, each costlier than the first ones.
        const ReadCostModel truth{3e-5, 8e-11};
        ReadEta eta(600000, 1000000, truth);
        const double err = etaError(eta, truth, 1.0, 600000, 1000000, 4096, 640000);
        QVERIFY2(std::abs(err) < 0.01, qPrintable(QString::number(err)));
    }

    void without_a_prior_the_benchmark_shape_is_used() {
        // No measurement stored: the benchmark's shape, scaled; a curve of that shape is exact.
        const ReadCostModel bench = benchmarkCostModel();
        QVERIFY(bench.a > 0 && bench.b > 0);
        ReadEta eta(0, 1 << 20, {});
        const double err = etaError(eta, bench, 3.0, 0, 1 << 20, 8192, (1 << 20) / 10);
        QVERIFY(std::abs(err) < 0.01);
    }

    void benchmark_table_from_ten_percent() {
        // docs/benchmarks.md: the real model reading 8K…1M on an H100. Reading 1M, at 131,072 tokens
        // (12.5 %) 5.14 s had passed; 55.13 s was the total.
        ReadEta eta(0, 1048576, {});
        eta.add(8192, 0.28);
        eta.add(32768, 1.22);
        eta.add(131072, 5.14);
        const double real = 55.13 - 5.14;
        const double err = (eta.remainingSeconds() - real) / real;
        const double naive = (5.14 / 131072 * (1048576 - 131072) - real) / real;
        qInfo("1M from 12.5 %%: ETA %.1f s, real %.1f s (%.1f %%); current-rate extrapolation %.1f s (%.1f %%)", eta.remainingSeconds(),
              real, 100 * err, 5.14 / 131072 * (1048576 - 131072), 100 * naive);
        QVERIFY(std::abs(err) < 0.2);
        QVERIFY(std::abs(err) < std::abs(naive));
        // And 128K read from scratch, from its 10 % (about 13K tokens: between the first two rows).
        ReadEta small(0, 131072, {});
        small.add(8192, 0.28);
        const double realSmall = 5.14 - 0.28;
        QVERIFY(std::abs((small.remainingSeconds() - realSmall) / realSmall) < 0.2);
        // The stored measurement after a complete read is the fit of everything measured.
        ReadEta full(0, 1048576, {});
        for (const auto& [n, t] : QList<QPair<qint64, double>>{{8192, 0.28}, {32768, 1.22}, {131072, 5.14}, {524288, 23.93}, {1048576, 55.13}})
            full.add(n, t);
        QVERIFY(std::abs(full.measured().seconds(0, 1048576) - 55.13) / 55.13 < 0.05);
    }
};

QTEST_GUILESS_MAIN(TestReadEta)
#include "test_read_eta.moc"
