// quire-desktop: Quire's window. --data-dir DIR overrides the data folder; --screenshots DIR runs
// the screenshot tour and exits.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QMessageBox>
#include <QStandardPaths>

#include "library/library_db.h"
#include "main_window.h"
#include "screenshot_tour.h"
#include "theme.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName("quire");
    QApplication::setApplicationDisplayName("Quire");
    QApplication::setApplicationVersion(QUIRE_VERSION);
    QCommandLineParser parser;
    parser.setApplicationDescription("Ask questions about whole books and codebases.");
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption dataDir("data-dir", "Where the library and saved states live.", "DIR");
    QCommandLineOption screenshots("screenshots", "Run the screenshot tour, save pictures to DIR, exit.", "DIR");
    parser.addOption(dataDir);
    parser.addOption(screenshots);
    parser.addPositionalArgument("files", "PDFs or folders to add to the selected library.");
    parser.process(app);

    const QString data = parser.isSet(dataDir) ? parser.value(dataDir) : QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation);
    QDir().mkpath(data);
    // Refuse a damaged library before any window exists; nothing is written to it.
    if (auto db = quire::app::LibraryDb::open(QDir(data).filePath("library.sqlite")); !db) {
        QMessageBox::critical(nullptr, "Quire", QString::fromStdString(db.status().message()));
        return 1;
    }
    {
        auto db = quire::app::LibraryDb::open(QDir(data).filePath("library.sqlite"));
        auto theme = db.value()->setting("theme");
        quire::ui::applyTheme(quire::ui::themeFromName(theme ? theme.value() : QString()));
    }
    // The quire command-line executable (for the PDF reader process) sits beside this one.
    QString helper = QDir(QApplication::applicationDirPath()).filePath("quire");
    if (!QFileInfo::exists(helper)) helper = QDir(QApplication::applicationDirPath()).filePath("../app/quire");
    quire::ui::MainWindow window(data, QFileInfo(helper).absoluteFilePath());
    window.show();
    if (!parser.positionalArguments().isEmpty())
        QObject::connect(&window, &quire::ui::MainWindow::modelReadyChanged, &window,
                         [&] { window.addSources(parser.positionalArguments()); }, Qt::SingleShotConnection);
    if (parser.isSet(screenshots)) {
        auto* tour = new quire::ui::ScreenshotTour(window, parser.value(screenshots));
        QObject::connect(tour, &quire::ui::ScreenshotTour::finished, &app, [](bool ok) { QApplication::exit(ok ? 0 : 1); });
        tour->start();
    }
    return QApplication::exec();
}
