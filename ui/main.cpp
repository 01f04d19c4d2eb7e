// quire-desktop: Quire's window. --data-dir DIR overrides the data folder; --screenshots DIR runs
// the screenshot tour and exits.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QMessageBox>
#include <QStandardPaths>

#include <cstdio>

#include "library/library_db.h"
#include "main_window.h"
#include "screenshot_tour.h"
#include "theme.h"

int main(int argc, char** argv) {
    QApplication::setApplicationName("quire");
    QApplication::setApplicationVersion(QUIRE_VERSION);
    // The command line is read before QApplication exists: --help, --version and usage errors must
    // work without a display (QApplication aborts when it finds none).
    QStringList arguments;
    for (int i = 0; i < argc; ++i) arguments << QString::fromLocal8Bit(argv[i]);
    QCommandLineParser parser;
    parser.setSingleDashWordOptionMode(QCommandLineParser::ParseAsLongOptions);  // -platform X, as Qt spells it
    parser.setApplicationDescription("Ask questions about whole books and codebases.");
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption dataDir("data-dir", "Where the library and saved states live.", "DIR");
    QCommandLineOption screenshots("screenshots", "Run the screenshot tour, save pictures to DIR, exit.", "DIR");
    parser.addOption(dataDir);
    parser.addOption(screenshots);
    parser.addPositionalArgument("files", "PDFs or folders to add to the selected library.");
    // Qt's own options (QApplication reads them itself): accepted, not listed.
    for (const char* qtOption : {"platform", "platformtheme", "plugin", "style", "stylesheet", "qwindowgeometry", "qwindowtitle",
                                 "qwindowicon", "display", "geometry", "session"}) {
        QCommandLineOption o(qtOption, "Qt option.", "VALUE");
        o.setFlags(QCommandLineOption::HiddenFromHelp);
        parser.addOption(o);
    }
    for (const char* qtFlag : {"reverse", "widgetcount", "nograb", "dograb", "sync"}) {
        QCommandLineOption o(qtFlag, "Qt option.");
        o.setFlags(QCommandLineOption::HiddenFromHelp);
        parser.addOption(o);
    }
    if (!parser.parse(arguments)) {
        std::fprintf(stderr, "quire-desktop: %s\nTry 'quire-desktop --help' for more information.\n", qPrintable(parser.errorText()));
        return 2;
    }
    if (parser.isSet("help") || parser.isSet("help-all")) {
        // helpText() names the program "<executable_name>" when no QApplication exists yet.
        std::fputs(qPrintable(parser.helpText().replace("<executable_name>", "quire-desktop")), stdout);
        return 0;
    }
    if (parser.isSet("version")) {
        std::printf("quire-desktop %s\n", QUIRE_VERSION);
        return 0;
    }
    QApplication app(argc, argv);
    QApplication::setApplicationDisplayName("Quire");

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
