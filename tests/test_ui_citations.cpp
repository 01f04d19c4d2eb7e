// Citations in the window (offscreen): a canned answer with good, malformed and unknown citations
// shows links only for the good ones and lists them under the answer as its sources; following a
// PDF citation shows that page in the page view (rendered, not blank, page number shown); following
// a code citation opens the file at the line with the line marked.
#include <QApplication>
#include <QDir>
#include <QSignalSpy>
#include <QtTest>

#include "chat_view.h"
#include "main_window.h"
#include "pdf_fixtures.h"
#include "pdf_page_view.h"
#include "source_code_view.h"
#include "test_support.h"
#include "ui_test_support.h"

using namespace quire;
using namespace quire::ui;

namespace {
using quire::test::put;
using quire::test::helper;

bool nonBlank(const QImage& image) {
    if (image.isNull()) return false;
    const QRgb first = image.pixel(0, 0);
    int differ = 0;
    for (int y = 0; y < image.height(); y += 3)
        for (int x = 0; x < image.width(); x += 3) differ += image.pixel(x, y) != first;
    return differ > 50;  // text drawn: a good number of pixels unlike the background
}

QUrl linkFor(const QList<QPair<QString, QUrl>>& links, const QString& text) {
    for (const auto& [t, url] : links)
        if (t == text) return url;
    return {};
}
}  // namespace

class TestUiCitations : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void citations_render_and_open() {
        MainWindow w(tmp_.path() + "/data", helper());
        w.show();
        test::waitReady(w);

        const QString pdf = tmp_.path() + "/manual.pdf";
        test::writeTextPdf(pdf, 4, "Manual");
        const QString tree = tmp_.path() + "/tree";
        QString code;
        for (int i = 1; i <= 80; ++i) code += QString("int value_%1 = %1;\n").arg(i);
        put(tree + "/src/values.cpp", code.toUtf8());
        const qint64 lib = w.createLibrary("Cited");
        w.selectLibrary(lib);
        QSignalSpy added(&w, &MainWindow::sourcesDone);
        w.addSources({pdf, tree});
        QVERIFY(added.wait(60000));

        // A canned answer: two good citations, a malformed one, an unknown file, a page past the end.
        w.chatView()->setTurns({{"Where is it?",
                                 "The lamp is on [p. 2], the value in [src/values.cpp:64]; not [page two], "
                                 "[src/other.cpp:3] or [p. 9].",
                                 QString()}});
        const auto links = w.chatView()->links();
        QStringList texts;
        for (const auto& l : links)
            if (l.second.scheme() == "quire-cite") texts << l.first;
        // Each good citation twice (in the text and under Sources); nothing else cites.
        QCOMPARE(texts, QStringList({"p. 2", "src/values.cpp:64", "p. 2", "src/values.cpp:64"}));
        const QString shown = w.chatView()->transcriptText();
        QVERIFY(shown.contains("Sources"));
        QVERIFY(shown.contains("[page two]"));
        QVERIFY(shown.contains("[src/other.cpp:3]"));
        QVERIFY(shown.contains("[p. 9]"));
        QVERIFY(shown.contains("Manual 2"));          // the page's text under Sources
        QVERIFY(shown.contains("int value_64 = 64"));  // the cited line under Sources

        // Clicking the PDF citation shows that page.
        const QUrl page = linkFor(links, "p. 2");
        QVERIFY(page.isValid());
        w.chatView()->activateLink(page);
        QVERIFY(w.pageView());
        QTRY_VERIFY(w.pageView()->isVisible());
        QCOMPARE(w.pageView()->currentPage(), 2);
        QCOMPARE(w.pageView()->pageCount(), 4);
        QCOMPARE(w.pageView()->pageLabelText(), QString("Page 2 of 4"));
        QVERIFY(nonBlank(w.pageView()->renderedImage()));
        QVERIFY(w.pageView()->errorText().isEmpty());

        // Clicking the code citation opens the file at the line, the line marked.
        w.chatView()->activateLink(linkFor(links, "src/values.cpp:64"));
        QVERIFY(w.codeView());
        QTRY_VERIFY(w.codeView()->isVisible());
        QCOMPARE(w.codeView()->markedLine(), 64);
        QCOMPARE(w.codeView()->cursorLine(), 64);
        QVERIFY(w.codeView()->lineText(64).endsWith("int value_64 = 64;"));
        QVERIFY(w.codeView()->windowTitle().contains(QDir(tree).filePath("src/values.cpp")));
    }

    void page_view_reports_a_missing_file() {
        PdfPageView view;
        QVERIFY(!view.openPage(tmp_.path() + "/gone.pdf", 3));
        QVERIFY(view.errorText().contains("cannot be opened"));
        QCOMPARE(view.pageLabelText(), QString("Page 3"));
    }
};

int main(int argc, char** argv) {
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    TestUiCitations t;
    return QTest::qExec(&t, argc, argv);
}
#include "test_ui_citations.moc"
