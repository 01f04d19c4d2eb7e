#include "screenshot_tour.h"

#include <QApplication>
#include <QDir>
#include <QFileInfo>
#include <QTimer>

#include "app_context.h"
#include "chat_view.h"
#include "main_window.h"
#include "model_download/hub_download.h"
#include "model_download_dialog.h"
#include "pdf_page_view.h"
#include "theme.h"

#include <QFont>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>

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
            showCitations();
            if (theme_ == "light") runPass("dark");
            else emit finished(true);
        });
    });
    if (window_.modelReady()) runPass("light");
    else connect(&window_, &MainWindow::modelReadyChanged, this, [this] { QTimer::singleShot(300, this, [this] { runPass("light"); }); },
                 Qt::SingleShotConnection);
}

QString ScreenshotTour::logbookPdf() {
    // A short PDF for the page view: the demo library has none.
    QDir().mkpath(QDir::tempPath() + "/quire-screenshot-tour");
    const QString path = QDir::tempPath() + "/quire-screenshot-tour/logbook.pdf";
    QPdfWriter writer(path);
    writer.setPageSize(QPageSize(QPageSize::A5));
    QPainter p(&writer);
    p.setFont(QFont("DejaVu Serif", 12));
    const QStringList pages = {
        "Harrow Point light — logbook, November\n\n1 Nov. Wind SW 4. Lamp lit 16:52, out 07:01. Oil: 11 gallons.",
        "2 Nov. Wind SW rising 9. Lamp lit 16:50. 23:10 clockwork stopped: the weight jammed in its shaft. "
        "Turned the lens by hand until dawn, two flashes every fifteen seconds.\n\nThe Mary Rowe passed the reef at 02:40.",
        "3 Nov. Wind W 5. Shaft cleared, weight rehung. Lamp lit 16:48."};
    for (int i = 0; i < pages.size(); ++i) {
        if (i) writer.newPage();
        p.drawText(QRect(300, 300, writer.width() - 600, writer.height() - 600), Qt::TextWordWrap, pages[i]);
    }
    return QFileInfo(path).absoluteFilePath();
}

void ScreenshotTour::showCitations() {
    // A canned answer with citations (the demo model's own answers are noise), its sources, the
    // page view of the first citation, and the download dialog in mid-download.
    window_.chatView()->setTurns({{"What happened at Harrow Point on the night of 2 November?",
                                   "At 23:10 the lamp's clockwork stopped, the weight jammed in its shaft [logbook.pdf p. 2], "
                                   "and the keeper turned the lens by hand until dawn [the-keeper-of-the-light.txt:19]. "
                                   "The word counter that tallies the logbook normalises each word first "
                                   "[wordcount/counting.py:20]. (An unknown citation such as [p. 99] stays plain text.)",
                                   tr("canned answer for the screenshot")}});
    shoot(theme_ + "-citations");
    for (const auto& [text, url] : window_.chatView()->links())
        if (text.contains("p. 2")) {
            window_.chatView()->activateLink(url);
            break;
        }
    if (PdfPageView* view = window_.pageView()) {
        QApplication::processEvents();
        view->grab().save(QDir(outDir_).filePath(theme_ + "-page-view.png"));
        view->close();
    }
    ModelDownloadDialog dialog(QDir::homePath() + "/.local/share/quire/models", &window_);
    dialog.show();
    app::DownloadProgress p;
    p.file = "model-00002-of-00004.safetensors";
    p.fileDone = 2'131'000'000;
    p.fileSize = 4'970'000'000;
    p.done = 7'300'000'000;
    p.total = 18'400'000'000;
    p.bytesPerSecond = 42.5e6;
    p.etaSeconds = 261;
    dialog.showProgress(p);
    QApplication::processEvents();
    dialog.grab().save(QDir(outDir_).filePath(theme_ + "-download.png"));
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
    window_.addSources({demo + "/the-keeper-of-the-light.txt", demo + "/wordcount", logbookPdf()});
}

}  // namespace quire::ui
