#include "screenshot_tour.h"

#include <QApplication>
#include <QDir>
#include <QTimer>

#include "app_context.h"
#include "chat_view.h"
#include "main_window.h"
#include "theme.h"

namespace quire::ui {

ScreenshotTour::ScreenshotTour(MainWindow& window, QString outDir) : window_(window), outDir_(std::move(outDir)) {
    QDir().mkpath(outDir_);
}

void ScreenshotTour::shoot(const QString& name) {
    QApplication::processEvents();
    window_.grab().save(QDir(outDir_).filePath(name + ".png"));
}

void ScreenshotTour::start() {
    connect(window_.worker(), &EngineWorker::readProgress, this, [this](qint64 done, qint64 total) {
        if (!readShot_ && done * 3 >= total) {  // a third of the way through
            readShot_ = true;
            shoot(theme_ + "-reading");
        }
    });
    connect(window_.worker(), &EngineWorker::answerDelta, this, [this] {
        if (!answerShot_ && ++deltas_ == 18) {  // mid-answer: the stop button is live
            answerShot_ = true;
            window_.chatView()->flush();
            shoot(theme_ + "-answering");
        }
    });
    connect(&window_, &MainWindow::readDone, this, [this] {
        QTimer::singleShot(200, this, [this] { window_.ask("What happened at Harrow Point on the night of 2 November?"); });
    });
    connect(&window_, &MainWindow::answerDone, this, [this] {
        QTimer::singleShot(300, this, [this] {
            shoot(theme_ + "-answered");
            if (theme_ == "light") runPass("dark");
            else emit finished(true);
        });
    });
    if (window_.modelReady()) runPass("light");
    else connect(&window_, &MainWindow::modelReadyChanged, this, [this] { QTimer::singleShot(300, this, [this] { runPass("light"); }); },
                 Qt::SingleShotConnection);
}

void ScreenshotTour::runPass(const QString& theme) {
    theme_ = theme;
    applyTheme(theme == "dark" ? Theme::dark : Theme::light);
    readShot_ = answerShot_ = false;
    deltas_ = 0;
    // A fresh library per pass, so that there is something to read.
    const QString demo = app::demoLibraryDir();
    const qint64 id = window_.createLibrary(theme == "dark" ? "Harrow Point logbooks" : "Keeper of the Light");
    window_.selectLibrary(id);
    connect(&window_, &MainWindow::sourcesDone, this, [this] { window_.readLibrary(); }, Qt::SingleShotConnection);
    window_.addSources({demo + "/the-keeper-of-the-light.txt", demo + "/wordcount"});
}

}  // namespace quire::ui
