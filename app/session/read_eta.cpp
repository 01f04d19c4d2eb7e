#include "read_eta.h"

#include <QStringList>

#include <cmath>

namespace quire::app {

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

ReadCostModel benchmarkCostModel() {
    // 8,192 / 32,768 / 131,072 / 524,288 / 1,048,576 tokens in 0.28 / 1.22 / 5.14 / 23.93 / 55.13 s.
    return fitCostModel(0, {{8192, 0.28}, {32768, 1.22}, {131072, 5.14}, {524288, 23.93}, {1048576, 55.13}});
}

ReadCostModel fitCostModel(qint64 p0, const QList<QPair<qint64, double>>& points) {
    // Minimise Σ ((a·x + b·y − t) / t)² with x = n − p0, y = (n² − p0²)/2; a or b clamped at 0.
    double sxx = 0, sxy = 0, syy = 0, sx = 0, sy = 0;
    const double p = static_cast<double>(p0);
    for (const auto& [n, t] : points) {
        if (t <= 0 || n <= p0) continue;
        const double w = 1.0 / t, x = (double(n) - p) * w, y = (double(n) * double(n) - p * p) / 2 * w;
        sxx += x * x, sxy += x * y, syy += y * y, sx += x, sy += y;
    }
    ReadCostModel m;
    const double det = sxx * syy - sxy * sxy;
    if (det > 1e-12 * sxx * syy) {
        m.a = (sx * syy - sy * sxy) / det;
        m.b = (sxx * sy - sxy * sx) / det;
    }
    if (m.a < 0 || m.b < 0 || det <= 1e-12 * sxx * syy) {  // one term alone fits better, or the points cannot tell
        const double onlyA = sxx > 0 ? sx / sxx : 0, onlyB = syy > 0 ? sy / syy : 0;
        const auto residual = [&](double a, double b) {
            double r = 0;
            for (const auto& [n, t] : points)
                if (t > 0 && n > p0) r += std::pow((a * (double(n) - p) + b * (double(n) * double(n) - p * p) / 2 - t) / t, 2);
            return r;
        };
        m = residual(onlyA, 0) <= residual(0, onlyB) ? ReadCostModel{onlyA, 0} : ReadCostModel{0, onlyB};
    }
    return m;
}

ReadEta::ReadEta(qint64 start, qint64 end, ReadCostModel prior)
    : start_(start), end_(end), prior_(prior.valid() ? prior : benchmarkCostModel()) {}

void ReadEta::add(qint64 position, double seconds) {
    if (position > start_ && seconds > 0) points_.append({position, seconds});
}

double ReadEta::remainingSeconds() const {
    if (points_.isEmpty()) return -1;
    // The prior's shape, scaled to what was measured: s = Σ t·m / Σ m² (relative weights).
    double num = 0, den = 0;
    for (const auto& [n, t] : points_) {
        const double m = prior_.seconds(double(start_), double(n));
        if (m <= 0) continue;
        num += m / t;  // Σ (m/t)·1 with weight 1/t² on (s·m − t)
        den += (m / t) * (m / t);
    }
    if (den <= 0) return -1;
    const double scale = num / den;
    const double at = double(points_.last().first);
    return std::max(0.0, scale * prior_.seconds(at, double(end_)));
}

}  // namespace quire::app
