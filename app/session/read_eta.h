#pragma once
// An honest reading ETA. Reading a token costs more the further into the context it stands (its
// attention looks at more of what came before), so the cost per token is modelled as a + b·position
// and the time to read [p0, n) as a·(n−p0) + b·(n²−p0²)/2, instead of extrapolating the current rate,
// which promises too little for a long library.
//
// Where the line comes from, in order of trust:
//  - during a read, from the time of each chunk against its position (a weighted line fit of the
//    per-token time of the chunks; the first chunk of a read, which carries one-time warm-up, left
//    out), pulled towards the prior's shape while the measured span is still short;
//  - before that, from the line measured by the previous long read of the same model and backend
//    (SessionService stores measured() per model fingerprint and backend in the library database);
//  - before any, from the one the app ships with: `quire ask` reading ~1M tokens on an H200
//    (docs/benchmarks.md, the ETA section).
// Near the end the estimate is blended, weighted by progress, with the measured rate of the last
// chunks, so it converges on what the machine is doing now.

#include <QList>
#include <QPair>
#include <QString>

namespace quire::app {

struct ReadCostModel {
    double a = 0;  // seconds per token at position 0
    double b = 0;  // extra seconds per token per position
    bool valid() const { return a > 0 || b > 0; }
    double seconds(double from, double to) const { return a * (to - from) + b * (to * to - from * from) / 2; }
    QString toString() const;
    static ReadCostModel fromString(const QString& s);  // invalid if it does not parse
};

// (position reached, seconds since the read started) — what a progress report says.
using ReadPoint = QPair<qint64, double>;

// The line a + b·position fitted to the per-token time of the segments between consecutive points
// of a read that started at p0, each weighted by its tokens; b is never negative. `skipFirst` leaves
// out the first segment (a process's first chunk carries one-time warm-up) when others exist.
ReadCostModel fitPerTokenCost(qint64 p0, const QList<ReadPoint>& points, bool skipFirst);

// The shipped default: `quire ask --backend cuda` reading 1,013,747 tokens on an H200 (real 9B
// configuration, chunks of 8,192; docs/benchmarks.md's ETA section), fitted with fitPerTokenCost.
ReadCostModel shippedCostModel();
// Measured tables kept as data (docs/benchmarks.md): cumulative prefill seconds of the real 9B
// configuration at 8K…1M, quire-bench, chunks of 8,192.
QList<ReadPoint> h200PrefillTable();
QList<ReadPoint> h100PrefillTable();
// The H200 `quire ask` read of 1,013,747 tokens the shipped model comes from (seconds since its
// first progress line at 10/25/50/75/90/100 %).
QList<ReadPoint> h200AskReadTable();

class ReadEta {
public:
    // Reads shorter than this teach nothing; shorter than kMinTokensToLearnShape only the scale.
    static constexpr qint64 kMinTokensToLearn = 65536;
    static constexpr qint64 kMinTokensToLearnShape = 262144;

    ReadEta(qint64 start, qint64 end, ReadCostModel prior);
    void add(qint64 position, double secondsSinceStart);
    // Seconds left until `end`; -1 before the first measurement.
    double remainingSeconds() const;
    // What this read measured, to be stored for the next read of this model and backend: the line
    // measured on the chunks if the read spanned kMinTokensToLearnShape tokens, otherwise the prior's
    // shape scaled to the measured time; invalid if nothing was measured.
    ReadCostModel measured() const;
    // The line the ETA uses now (the measured chunks, pulled towards the scaled prior).
    ReadCostModel current() const;
    qint64 start() const { return start_; }

private:
    double priorScale() const;  // measured time / the prior's time over the chunks used
    QList<ReadPoint> usedPoints(qint64* from) const;

    qint64 start_, end_;
    ReadCostModel prior_;
    QList<ReadPoint> points_;
};

}  // namespace quire::app
