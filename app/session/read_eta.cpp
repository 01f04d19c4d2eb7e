#include "read_eta.h"

#include <QStringList>

#include <algorithm>
#include <cmath>

namespace quire::app {

namespace {

// Weighted least squares of y = a + b·x.
struct LineFit {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    void add(double x, double y, double w) {
        if (!(w > 0) || !std::isfinite(y)) return;
        sw += w, sx += w * x, sy += w * y, sxx += w * x * x, sxy += w * x * y;
    }
    ReadCostModel line() const {
        if (sw <= 0) return {};
        const double det = sw * sxx - sx * sx;
        ReadCostModel m;
        if (det > 1e-9 * sw * sxx) {
            m.b = (sw * sxy - sx * sy) / det;
            m.a = (sy - m.b * sx) / sw;
        }
        // One position only, a falling cost (noise), or a negative intercept: a flat or a
        // through-zero line is the honest fit.
        if (det <= 1e-9 * sw * sxx || m.b < 0) m = {sy / sw, 0};
        if (m.a < 0) m = {0, sxx > 0 ? sxy / sxx : 0};
        if (m.b < 0 || m.a < 0 || !std::isfinite(m.a) || !std::isfinite(m.b)) return {};
        return m;
    }
};

void addSegments(LineFit& fit, qint64 p0, const QList<ReadPoint>& points, bool skipFirst) {
    qint64 prevPos = p0;
    double prevT = 0;
    for (qsizetype i = 0; i < points.size(); ++i) {
        const auto [pos, t] = points[i];
        if (pos <= prevPos || t < prevT) continue;  // out of order: not a segment
        const bool first = i == 0;
        if (!(first && skipFirst && points.size() > 1))
            fit.add((double(prevPos) + double(pos)) / 2, (t - prevT) / double(pos - prevPos), double(pos - prevPos));
        prevPos = pos, prevT = t;
    }
}

}  // namespace

QString ReadCostModel::toString() const { return QString("%1 %2").arg(a, 0, 'g', 10).arg(b, 0, 'g', 10); }

ReadCostModel ReadCostModel::fromString(const QString& s) {
    const QStringList parts = s.split(' ', Qt::SkipEmptyParts);
    ReadCostModel m;
    bool okA = false, okB = false;
    if (parts.size() == 2) {
        m.a = parts[0].toDouble(&okA);
        m.b = parts[1].toDouble(&okB);
    }
    if (!okA || !okB || !std::isfinite(m.a) || !std::isfinite(m.b) || m.a < 0 || m.b < 0) return {};
    return m;
}

ReadCostModel fitPerTokenCost(qint64 p0, const QList<ReadPoint>& points, bool skipFirst) {
    LineFit fit;
    addSegments(fit, p0, points, skipFirst);
    return fit.line();
}

QList<ReadPoint> h200PrefillTable() { return {{8192, 0.28}, {32768, 1.18}, {131072, 5.05}, {524288, 23.05}, {1048576, 52.63}}; }
QList<ReadPoint> h100PrefillTable() { return {{8192, 0.28}, {32768, 1.22}, {131072, 5.14}, {524288, 23.93}, {1048576, 55.13}}; }

QList<ReadPoint> h200AskReadTable() {
    // 48.8 s from the first progress line to the last; the time really left at each fraction.
    const double n = 1013747, total = 48.8;
    QList<ReadPoint> t;
    for (const auto& [f, left] : QList<QPair<double, double>>{{0.10, 45.0}, {0.25, 38.9}, {0.50, 27.2}, {0.75, 14.0}, {0.90, 5.7}, {1.0, 0}})
        t.append({qint64(std::llround(f * n)), total - left});
    return t;
}

ReadCostModel shippedCostModel() {
    // The segments from 10 % on (the table's first point is the origin of its clock).
    const QList<ReadPoint> t = h200AskReadTable();
    QList<ReadPoint> rest;
    for (qsizetype i = 1; i < t.size(); ++i) rest.append({t[i].first, t[i].second - t[0].second});
    return fitPerTokenCost(t[0].first, rest, false);
}

ReadEta::ReadEta(qint64 start, qint64 end, ReadCostModel prior)
    : start_(start), end_(end), prior_(prior.valid() ? prior : shippedCostModel()) {}

void ReadEta::add(qint64 position, double seconds) {
    if (position <= start_ || !(seconds > 0) || !std::isfinite(seconds)) return;
    if (!points_.isEmpty() && (position <= points_.last().first || seconds < points_.last().second)) return;
    points_.append({position, seconds});
}

QList<ReadPoint> ReadEta::usedPoints(qint64* from) const {
    // Without the first chunk when there are others: it carries the process's one-time warm-up.
    if (points_.size() < 2) {
        *from = start_;
        return points_;
    }
    *from = points_[0].first;
    QList<ReadPoint> rest;
    for (qsizetype i = 1; i < points_.size(); ++i) rest.append({points_[i].first, points_[i].second - points_[0].second});
    return rest;
}

double ReadEta::priorScale() const {
    qint64 from = 0;
    const QList<ReadPoint> used = usedPoints(&from);
    if (used.isEmpty()) return 1;
    const double model = prior_.seconds(double(from), double(used.last().first));
    return model > 0 ? used.last().second / model : 1;
}

ReadCostModel ReadEta::current() const {
    if (points_.isEmpty()) return prior_;
    qint64 from = 0;
    const QList<ReadPoint> used = usedPoints(&from);
    LineFit fit;
    addSegments(fit, from, used, false);
    // The scaled prior as pseudo-measurements where the ETA looks (here and at the end), worth a
    // quarter of the read while little is measured and nothing at its end: early on the measured
    // span is too short to tell the slope, later it tells it better than any prior.
    const double pos = double(points_.last().first), span = double(std::max<qint64>(end_ - start_, 1));
    const double progress = std::clamp((pos - double(start_)) / span, 0.0, 1.0);
    const double weight = 0.25 * span * (1 - progress), s = priorScale();
    for (const double q : {pos, std::max(pos, double(end_))}) fit.add(q, s * (prior_.a + prior_.b * q), weight / 2);
    const ReadCostModel m = fit.line();
    return m.valid() ? m : ReadCostModel{prior_.a * s, prior_.b * s};
}

double ReadEta::remainingSeconds() const {
    if (points_.isEmpty()) return -1;
    const qint64 pos = points_.last().first;
    if (pos >= end_) return 0;
    const ReadCostModel line = current();
    const double model = line.seconds(double(pos), double(end_));
    // The rate of the last chunks (at least 3 % of the read) against what the line says of them,
    // trusted as much as the read has progressed: the last seconds follow the machine's pace now.
    qint64 from = 0;
    const QList<ReadPoint> used = usedPoints(&from);
    const qint64 want = std::max<qint64>(1, (end_ - start_) * 3 / 100);
    qsizetype i = used.size() - 1;
    while (i > 0 && pos - used[i - 1].first < want) --i;
    const qint64 recentFrom = i > 0 ? used[i - 1].first : from;
    const double recentTime = used.last().second - (i > 0 ? used[i - 1].second : 0);
    const double recentModel = line.seconds(double(recentFrom), double(pos));
    const double progress = double(pos - start_) / double(end_ - start_);
    const double k = recentModel > 0 && recentTime > 0 ? recentTime / recentModel : 1;
    return std::max(0.0, model * ((1 - progress) + progress * k));
}

ReadCostModel ReadEta::measured() const {
    if (points_.isEmpty()) return {};
    qint64 from = 0;
    const QList<ReadPoint> used = usedPoints(&from);
    if (points_.last().first - start_ >= kMinTokensToLearnShape) {
        const ReadCostModel m = fitPerTokenCost(from, used, false);
        if (m.valid()) return m;
    }
    const double s = priorScale();
    return {prior_.a * s, prior_.b * s};
}

}  // namespace quire::app
