#pragma once
// An honest reading ETA. Reading a token costs more the further into the context it stands (its
// attention looks at more of what came before), so the time to read positions [p0, n) is modelled
// as a·(n−p0) + b·(n²−p0²)/2 — a per-token cost a + b·position — instead of extrapolating the
// current rate, which promises too little for a long library.
//
// The shape (b/a) comes from a cost model measured once per model and backend (a complete read of
// at least kMinTokensToLearn tokens stores its fit) or, before that, from the benchmark of the real
// model on the CUDA engine (docs/benchmarks.md: 8K…1M fitted within 5 %). During a read only the
// scale is fitted to the measured progress, which the early part of a read determines well; b
// itself is not, because early on the quadratic term is small.

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

// The real model on the CUDA engine (H100), fitted to docs/benchmarks.md's prefill table.
ReadCostModel benchmarkCostModel();

// Least-squares fit (relative error) of a and b ≥ 0 to points (position, seconds since p0).
ReadCostModel fitCostModel(qint64 p0, const QList<QPair<qint64, double>>& points);

class ReadEta {
public:
    static constexpr qint64 kMinTokensToLearn = 65536;

    ReadEta(qint64 start, qint64 end, ReadCostModel prior);
    void add(qint64 position, double secondsSinceStart);
    // Seconds left until `end`; -1 before the first measurement.
    double remainingSeconds() const;
    // The fit of everything measured in this read (the stored model after a complete read).
    ReadCostModel measured() const { return fitCostModel(start_, points_); }
    qint64 start() const { return start_; }

private:
    qint64 start_, end_;
    ReadCostModel prior_;
    QList<QPair<qint64, double>> points_;
};

}  // namespace quire::app
