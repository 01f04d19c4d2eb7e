// The window: item models checked by QAbstractItemModelTester; a scripted flow on the offscreen
// platform (create a library, add a PDF and a code tree, read, ask with streaming, stop, a
// follow-up that does not re-read, export); the GUI thread never stalls for 50 ms while reading.
#include <QAbstractItemModelTester>
#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QSignalSpy>
#include <QTimer>
#include <QtTest>

#include <ctime>

#include "chat_view.h"
#include "engine_worker.h"
#include "main_window.h"
#include "models/chat_list_model.h"
#include "models/library_list_model.h"
#include "models/source_table_model.h"
#include "pdf_fixtures.h"
#include "test_support.h"
#include "ui_test_support.h"

using namespace quire;
using namespace quire::ui;

namespace {
using quire::test::put;
using quire::test::helper;
using quire::test::waitReady;
}  // namespace

class TestUi : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void item_models_pass_the_tester() {
        auto db = app::LibraryDb::open(tmp_.path() + "/models.sqlite");
        QVERIFY(db.is_ok());
        app::LibraryDb& d = *db.value();
        LibraryListModel libs(d);
        SourceTableModel sources(d);
        ChatListModel chats(d);
        QAbstractItemModelTester t1(&libs, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QAbstractItemModelTester t2(&sources, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QAbstractItemModelTester t3(&chats, QAbstractItemModelTester::FailureReportingMode::QtTest);
        const qint64 a = d.createLibrary("Alpha", "").value();
        d.createLibrary("Beta", "").value();
        libs.refresh();
        QCOMPARE(libs.rowCount(), 2);
        QCOMPARE(libs.data(libs.index(0)).toString(), QString("Alpha"));
        QCOMPARE(libs.idAt(0), a);
        app::SourceRow s;
        s.libraryId = a;
        s.path = "/x/book.pdf";
        s.kind = "pdf";
        s.units = 12;
        s.status = "ready";
        QVERIFY(d.addSource(s, "text").is_ok());
        s.path = "/x/locked.pdf";
        s.status = "needs password";
        s.error = "the PDF is encrypted: a password is needed";
        QVERIFY(d.addSource(s, "").is_ok());
        sources.setLibrary(a);
        QCOMPARE(sources.rowCount(), 2);
        QCOMPARE(sources.data(sources.index(0, SourceTableModel::UnitsColumn)).toString(), QString("12 pages"));
        QCOMPARE(sources.data(sources.index(1, SourceTableModel::StatusColumn)).toString(), QString("Needs password"));
        QVERIFY(sources.data(sources.index(1, SourceTableModel::NameColumn), Qt::ToolTipRole).toString().contains("encrypted"));
        d.createChat(a, "First").value();
        d.createChat(a, "Second").value();
        chats.setLibrary(a);
        QCOMPARE(chats.rowCount(), 2);
        QCOMPARE(chats.data(chats.index(0)).toString(), QString("Second"));  // newest first
        sources.setLibrary(0);
        QCOMPARE(sources.rowCount(), 0);
        libs.refresh();
    }

    void scripted_flow() {
        const QString data = tmp_.path() + "/flow";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        QVERIFY(w.demoMode());  // no model configured: the tiny demo model, announced in the window
        QCOMPARE(w.libraryModel()->rowCount(), 1);  // the demo library

        // Create a library and add a PDF and a code tree.
        const QString pdf = tmp_.path() + "/manual.pdf";
        test::writeTextPdf(pdf, 4, "Manual");
        const QString tree = tmp_.path() + "/tree";
        put(tree + "/.gitignore", "build/\n");
        put(tree + "/src/main.cpp", "int main() { return 42; }\n");
        put(tree + "/build/out.o", "ignored\n");
        const qint64 lib = w.createLibrary("Project");
        QVERIFY(lib > 0);
        w.selectLibrary(lib);
        QSignalSpy added(&w, &MainWindow::sourcesDone);
        w.addSources({pdf, tree});
        QVERIFY(added.wait(60000));
        QCOMPARE(w.sourceModel()->rowCount(), 2);
        for (int r = 0; r < 2; ++r) QCOMPARE(w.sourceModel()->sourceAt(r).status, QString("ready"));

        // Read it.
        QSignalSpy read(&w, &MainWindow::readDone);
        QSignalSpy progress(w.worker(), &EngineWorker::readProgress);
        w.readLibrary();
        QVERIFY(read.wait(60000));
        QCOMPARE(read.first().first().toBool(), true);
        QVERIFY(progress.count() >= 1);
        QTRY_VERIFY(w.stateText().contains("ready"));

        // Ask: text streams in.
        QSignalSpy deltas(w.worker(), &EngineWorker::answerDelta);
        QSignalSpy answered(&w, &MainWindow::answerDone);
        w.ask("What does main return?");
        QVERIFY(answered.wait(60000));
        QVERIFY2(deltas.count() > 1, "the answer arrived in pieces");
        const qint64 chat = answered.first().at(0).toLongLong();
        QVERIFY(chat > 0);
        QVERIFY(w.chatView()->transcriptText().contains("What does main return?"));

        // Stop a long answer after its first piece.
        app::LibraryDb* db = nullptr;
        auto settings = app::LibraryDb::open(data + "/library.sqlite");
        db = settings.value().get();
        QVERIFY(db->setSetting("max_tokens", "4000").is_ok());
        deltas.clear();
        answered.clear();
        connect(w.worker(), &EngineWorker::answerDelta, &w, [&w] { w.stop(); }, Qt::SingleShotConnection);
        w.ask("Tell me everything, at length.");
        QVERIFY(answered.wait(60000));
        QVERIFY2(deltas.count() < 400, "stopped well before 4000 tokens");
        QVERIFY(w.chatView()->transcriptText().contains("stopped"));

        // A follow-up in the same chat computes only its own tokens: the library is not read again.
        answered.clear();
        QVERIFY(db->setSetting("max_tokens", "8").is_ok());
        w.ask("And why?");
        QVERIFY(answered.wait(60000));
        const qint64 computed = answered.first().at(1).toLongLong();
        QVERIFY2(computed > 0 && computed < 40, qPrintable(QString::number(computed)));

        // Export.
        const QString md = tmp_.path() + "/chat.md";
        QVERIFY(w.exportChat(md));
        const QByteArray text = test::read_all(md.toStdString());
        QVERIFY(text.contains("## Question\n\nWhat does main return?"));
        QVERIFY(text.contains("## Question\n\nAnd why?"));
    }

    void gui_thread_stays_responsive_while_reading() {
        const QString data = tmp_.path() + "/responsive";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        QString big;
        for (int i = 0; i < 400; ++i) big += QString("Line %1 of the long logbook: wind, oil, ships and the 117 steps.\n").arg(i);
        put(tmp_.path() + "/long.txt", big.toUtf8());
        const qint64 lib = w.createLibrary("Long");
        w.selectLibrary(lib);
        QSignalSpy added(&w, &MainWindow::sourcesDone);
        w.addSources({tmp_.path() + "/long.txt"});
        QVERIFY(added.wait(60000));
        // A 5 ms timer on the GUI thread: the longest gap between its ticks is the longest time the
        // GUI thread was busy, waiting or starved during the read. On a loaded 2-core machine the
        // reading threads can starve it for longer than 50 ms, so the GUI thread's own CPU time is
        // measured too: a longer gap passes only when the thread did not compute through it (at
        // most 50 ms of CPU time between two ticks) and the gap stays under a second.
        auto threadCpuMs = [] {
            timespec t{};
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
            return static_cast<qint64>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
        };
        QElapsedTimer clock;
        qint64 last = 0, worst = 0, lastCpu = 0, worstCpu = 0;
        QTimer tick;
        tick.setInterval(5);
        connect(&tick, &QTimer::timeout, &w, [&] {
            const qint64 now = clock.elapsed(), cpu = threadCpuMs();
            worst = std::max(worst, now - last);
            worstCpu = std::max(worstCpu, cpu - lastCpu);
            last = now;
            lastCpu = cpu;
        });
        QSignalSpy read(&w, &MainWindow::readDone);
        clock.start();
        lastCpu = threadCpuMs();
        const qint64 cpuAtStart = lastCpu;
        tick.start();
        w.readLibrary();
        QVERIFY(read.wait(120000));
        tick.stop();
        const qint64 wall = clock.elapsed(), guiCpu = threadCpuMs() - cpuAtStart;
        qInfo("read %lld ms; longest GUI-thread gap %lld ms, most GUI-thread CPU between two ticks %lld ms, GUI-thread CPU in all %lld ms",
              static_cast<long long>(wall), static_cast<long long>(worst), static_cast<long long>(worstCpu), static_cast<long long>(guiCpu));
        QVERIFY2(wall > 500, "the read should take long enough to measure");
        QVERIFY2(worstCpu < 50, qPrintable(QString("the GUI thread computed for %1 ms without a tick").arg(worstCpu)));
        QVERIFY2(worst < 1000, qPrintable(QString("GUI thread blocked for %1 ms").arg(worst)));
        QVERIFY2(guiCpu * 5 < wall, qPrintable(QString("the GUI thread used %1 ms of CPU during a %2 ms read").arg(guiCpu).arg(wall)));
    }
};

int main(int argc, char** argv) {
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    TestUi t;
    return QTest::qExec(&t, argc, argv);
}
#include "test_ui.moc"
