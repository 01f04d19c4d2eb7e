#include "context_gauge.h"

#include <QLocale>
#include <QPainter>
#include <QPainterPath>

namespace quire::ui {

ContextGauge::ContextGauge(QWidget* parent) : QWidget(parent) {
    setMinimumHeight(30);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
}

void ContextGauge::setUsage(qint64 used, qint64 limit) {
    used_ = used;
    limit_ = std::max<qint64>(limit, 1);
    setToolTip(tr("%1 of %2 tokens of context").arg(QLocale().toString(used_), QLocale().toString(limit_)));
    update();
}

void ContextGauge::setOverLimit(bool over) {
    over_ = over;
    update();
}

void ContextGauge::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QRectF bar = rect().adjusted(1, 1, -1, -1);
    const QPalette& pal = palette();
    QPainterPath track;
    track.addRoundedRect(bar, 6, 6);
    p.fillPath(track, pal.color(QPalette::AlternateBase));
    const double share = std::min(1.0, static_cast<double>(used_) / static_cast<double>(limit_));
    if (share > 0) {
        QPainterPath fill;
        fill.addRoundedRect(QRectF(bar.left(), bar.top(), std::max(12.0, bar.width() * share), bar.height()), 6, 6);
        QColor c = over_ || share > 0.9 ? QColor(0xd9, 0x53, 0x4f) : pal.color(QPalette::Highlight);
        c.setAlpha(200);
        p.fillPath(fill, c);
    }
    p.setPen(pal.color(QPalette::Text));
    p.drawText(bar, Qt::AlignCenter,
               tr("%1 / %2 tokens  (%3%)%4").arg(QLocale().toString(used_), QLocale().toString(limit_))
                   .arg(static_cast<double>(used_) / static_cast<double>(limit_) * 100.0, 0, 'f', share < 0.1 ? 2 : 1)
                   .arg(over_ ? tr(" — over the limit") : QString()));
}

}  // namespace quire::ui
