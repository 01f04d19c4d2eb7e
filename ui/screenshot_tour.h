#pragma once
// Drives the window through reading and answering, light then dark, and saves a screenshot of
// each moment (tools/screenshots.sh runs it under Xvfb; the pictures go to docs/screenshots/).

#include <QObject>
#include <QString>

namespace quire::ui {

class MainWindow;

class ScreenshotTour : public QObject {
    Q_OBJECT
public:
    ScreenshotTour(MainWindow& window, QString outDir);
    void start();

signals:
    void finished(bool ok);

private:
    void runPass(const QString& theme);
    void shoot(const QString& name);
    void showCitations();
    QString logbookPdf();

    MainWindow& window_;
    QString outDir_;
    QString theme_;
    int deltas_ = 0;
    bool readShot_ = false, answerShot_ = false;
};

}  // namespace quire::ui
