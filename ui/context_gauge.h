#pragma once
// How much of the context a library uses: a bar with "used of limit" and the share in percent.

#include <QWidget>

namespace quire::ui {

class ContextGauge : public QWidget {
    Q_OBJECT
public:
    explicit ContextGauge(QWidget* parent = nullptr);
    void setUsage(qint64 used, qint64 limit);
    qint64 used() const { return used_; }
    // Red, whatever the share: the library does not fit with room for the conversation.
    void setOverLimit(bool over);
    bool overLimit() const { return over_; }
    QSize sizeHint() const override { return {320, 30}; }

protected:
    void paintEvent(QPaintEvent* event) override;

private:
    qint64 used_ = 0, limit_ = 1 << 20;
    bool over_ = false;
};

}  // namespace quire::ui
