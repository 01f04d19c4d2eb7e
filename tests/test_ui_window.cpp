// The window's states (offscreen): cancel says where reading stopped (no dialog, no "prefill"),
// switching library mid-answer leaves the answer in its chat, a failed source keeps the model line,
// a library over the limit or with nothing readable blocks Send with the reason, the window's add refuses
// a source over the limit and waits for another add (add lock), rename and delete of
// libraries and chats remove their saved states from disk (window and CLI), message and code copy,
// regenerate, Copy/Export off on an empty chat.
#include <QAbstractItemModelTester>
#include <QApplication>
#include <QClipboard>
#include <QDir>
#include <QLockFile>
#include <QProcess>
#include <QSignalSpy>
#include <QtTest>

#include "chat_view.h"
#include "context_gauge.h"
#include "engine_worker.h"
#include "library/library_db.h"
#include "main_window.h"
#include "models/chat_list_model.h"
#include "models/library_list_model.h"
#include "models/source_table_model.h"
#include "small_disk.h"
#include "test_support.h"
#include "ui_test_support.h"

using namespace quire;
using namespace quire::ui;

namespace {
using quire::test::put;
using quire::test::helper;
using quire::test::waitReady;
using quire::test::SmallDisk;

QByteArray logbook(int lines) {
    QByteArray text;
    for (int i = 0; i < lines; ++i) text += QString("Line %1 of the long logbook: wind, oil, ships and the 117 steps.\n").arg(i).toUtf8();
    return text;
}

qint64 libraryWith(MainWindow& w, const QString& name, const QStringList& paths) {
    const qint64 lib = w.createLibrary(name);
    w.selectLibrary(lib);
    QSignalSpy added(&w, &MainWindow::sourcesDone);
    w.addSources(paths);
    if (!added.wait(120000)) return 0;
    return lib;
}

QStringList stateFiles(const QString& data) { return QDir(data + "/states").entryList({"*.qstate"}, QDir::Files); }

int runQuire(const QStringList& args, QString* out = nullptr) {
    QProcess p;
    p.start(helper(), args);
    p.waitForFinished(120000);
    if (out) *out = QString::fromUtf8(p.readAllStandardOutput() + p.readAllStandardError());
    return p.exitCode();
}
}  // namespace

class TestUiWindow : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void cancel_says_where_reading_stopped() {
        const QString data = tmp_.path() + "/cancel";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        put(tmp_.path() + "/long.txt", logbook(600));
        QVERIFY(libraryWith(w, "Long", {tmp_.path() + "/long.txt"}));
        QSignalSpy read(&w, &MainWindow::readDone);
        connect(w.worker(), &EngineWorker::readProgress, &w, [&w] { w.stop(); }, Qt::SingleShotConnection);
        w.readLibrary();
        QVERIFY(read.wait(120000));
        QCOMPARE(read.first().first().toBool(), false);
        QVERIFY2(w.progressText().contains(QRegularExpression("^Reading stopped at [0-9,]+ tokens — the next question continues from there$")),
                 qPrintable(w.progressText()));
        QVERIFY(!w.progressText().contains("prefill", Qt::CaseInsensitive));
        QVERIFY(QApplication::activeModalWidget() == nullptr);
        QVERIFY(!w.busy());
        // Stopped while an answer was still reading the library: no dialog either, the turn marked.
        QSignalSpy answered(&w, &MainWindow::answerDone);
        connect(w.worker(), &EngineWorker::readProgress, &w, [&w] { w.stop(); }, Qt::SingleShotConnection);
        w.ask("What is on line 500?");
        QVERIFY(answered.wait(120000));
        QVERIFY(w.progressText().startsWith("Reading stopped at"));
        QVERIFY(w.chatView()->transcriptText().contains("stopped"));
        QVERIFY(QApplication::activeModalWidget() == nullptr);
        QVERIFY(w.modelLineText().startsWith("Model:"));
    }

    // A disk that is full when the window opens: the libraries are shown, read-only, and the status
    // bar says why every change fails (the window used to refuse to open); deleting a library with a
    // saved state frees the space and makes it writable again.
    void full_disk_opens_read_only_and_says_so() {
        SmallDisk disk(tmp_.path() + "/small");
        if (!disk.mounted()) QSKIP("needs root and the right to mount a small tmpfs");
        const QString mnt = disk.path();
        qint64 big = 0;
        {
            auto db = quire::app::LibraryDb::open(mnt + "/library.sqlite");
            QVERIFY(db.is_ok());
            QVERIFY(db.value()->createLibrary("Kept", "").is_ok());
            big = db.value()->createLibrary("Big", "").value();
            QVERIFY(QDir().mkpath(mnt + "/states"));
            put(mnt + "/states/big.qstate", QByteArray(300 << 10, 's'));
            app::PrefixStateRow row;
            row.libraryId = big;
            row.path = "states/big.qstate";
            row.tokenCount = 1;
            row.bytes = 300 << 10;
            QVERIFY(db.value()->addPrefixState(row).is_ok());
        }
        QVERIFY(disk.fill());
        {
            MainWindow w(mnt, helper());
            QVERIFY2(w.readOnlyText().contains("on a full disk"), qPrintable(w.readOnlyText()));
            QCOMPARE(w.libraryModel()->rowCount(), 2);
            // Deleting a library frees its saved state first: the library is writable again, and the
            // status bar says so by dropping its notice.
            QVERIFY(w.deleteLibrary(big));
            QVERIFY(!QFileInfo::exists(mnt + "/states/big.qstate"));
            QVERIFY2(w.readOnlyText().isEmpty(), qPrintable(w.readOnlyText()));
            QCOMPARE(w.libraryModel()->rowCount(), 1);
        }
        QVERIFY(disk.empty());
        MainWindow again(mnt, helper());
        QVERIFY(again.readOnlyText().isEmpty());
    }

    void switching_library_mid_answer_keeps_the_answer_in_its_chat() {
        const QString data = tmp_.path() + "/switch";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        put(tmp_.path() + "/a.txt", logbook(20));
        put(tmp_.path() + "/b.txt", logbook(10));
        const qint64 b = libraryWith(w, "B", {tmp_.path() + "/b.txt"});
        const qint64 a = libraryWith(w, "A", {tmp_.path() + "/a.txt"});
        QVERIFY(a && b);
        auto settings = app::LibraryDb::open(data + "/library.sqlite");
        QVERIFY(settings.value()->setSetting("max_tokens", "48").is_ok());
        QSignalSpy answered(&w, &MainWindow::answerDone);
        connect(w.worker(), &EngineWorker::answerDelta, &w, [&w, b] { w.selectLibrary(b); }, Qt::SingleShotConnection);
        w.ask("Which line mentions oil first?");
        QVERIFY(answered.wait(120000));
        const qint64 chat = answered.first().first().toLongLong();
        QVERIFY(chat > 0);
        QCOMPARE(w.currentLibrary(), b);
        QVERIFY(!w.chatView()->transcriptText().contains("Which line mentions oil first?"));  // not written into B
        w.selectLibrary(a);
        QCOMPARE(w.currentChat(), chat);  // back in A: its chat, with the answer
        QVERIFY(w.chatView()->transcriptText().contains("Which line mentions oil first?"));
        QVERIFY(!w.chatView()->lastAnswer().isEmpty());
    }

    void failed_sources_and_over_limit_block_send_with_the_reason() {
        const QString data = tmp_.path() + "/blocked";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        const QString modelLine = w.modelLineText();
        QVERIFY(modelLine.startsWith("Model:"));
        // A library whose only source failed: says so, Send off; the model line stays.
        QVERIFY(libraryWith(w, "Broken", {tmp_.path() + "/does-not-exist.pdf"}));
        QCOMPARE(w.sourceModel()->rowCount(), 1);
        QVERIFY(w.sourceModel()->data(w.sourceModel()->index(0, SourceTableModel::StatusColumn)).toString().startsWith("Error: no such file"));
        QCOMPARE(w.modelLineText(), modelLine);
        QTRY_VERIFY(w.problem().contains("None of this library's sources could be read"));
        QVERIFY(!w.chatView()->sendEnabled());
        QVERIFY(w.chatView()->sendToolTip().contains("None of this library's sources"));
        QSignalSpy answered(&w, &MainWindow::answerDone);
        w.ask("Anything?");  // refused: nothing to answer from
        QVERIFY(!w.busy());
        QCOMPARE(answered.count(), 0);
        // A source that alone passes the context limit is refused by the window's add, as by `quire add`,
        // and never stored.
        put(tmp_.path() + "/huge.txt", logbook(40000));
        QSignalSpy refused(w.worker(), &EngineWorker::sourceAdded);
        const qint64 huge = libraryWith(w, "Huge", {tmp_.path() + "/huge.txt"});
        QVERIFY(huge);
        QCOMPARE(refused.count(), 1);
        QCOMPARE(refused.first().at(2).toString(), QString("error"));
        QVERIFY2(refused.first().at(3).toString().contains("alone needs") && refused.first().at(3).toString().contains("not added"),
                 qPrintable(refused.first().at(3).toString()));
        QCOMPARE(w.sourceModel()->rowCount(), 0);
        // A library over the limit (here added with a larger limit on the command line): shown at once,
        // before any reading.
        QCOMPARE(runQuire({"add", "Huge", tmp_.path() + "/huge.txt", "--data-dir", data, "--context-limit", "4194304"}), 0);
        QString shown;  // the source's tokens are counted for `library show` although no question could count them
        QCOMPARE(runQuire({"library", "show", "Huge", "--data-dir", data}, &shown), 0);
        QVERIFY2(shown.contains(QRegularExpression("huge.txt  text, 1 file, [1-9][0-9]{5,} tokens, ready")), qPrintable(shown));
        w.selectLibrary(huge);
        QTRY_VERIFY_WITH_TIMEOUT(w.problem().contains("more than the context limit"), 60000);
        QVERIFY(w.gauge()->overLimit());
        QVERIFY(w.gauge()->used() > (1 << 20));
        QVERIFY(!w.chatView()->sendEnabled());
        QCOMPARE(w.modelLineText(), modelLine);
        // A library that fits is askable again.
        put(tmp_.path() + "/small.txt", logbook(5));
        QVERIFY(libraryWith(w, "Small", {tmp_.path() + "/small.txt"}));
        QTRY_VERIFY(w.problem().isEmpty());
        QVERIFY(w.chatView()->sendEnabled());
        QVERIFY(!w.gauge()->overLimit());
    }

    void window_add_waits_for_another_add_and_can_be_stopped() {
        const QString data = tmp_.path() + "/add-lock";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        put(tmp_.path() + "/a.txt", logbook(20));
        put(tmp_.path() + "/b.txt", logbook(20));
        const qint64 lib = w.createLibrary("Locked");
        w.selectLibrary(lib);
        // Another add holds the library's add lock: the window's add waits, says so, and goes on once it
        // is released.
        QLockFile other(data + QString("/library-%1.add.lock").arg(lib));
        QVERIFY(other.tryLock(0));
        QSignalSpy notices(w.worker(), &EngineWorker::notice);
        QSignalSpy added(&w, &MainWindow::sourcesDone);
        w.addSources({tmp_.path() + "/a.txt"});
        QTRY_VERIFY_WITH_TIMEOUT(!notices.isEmpty(), 30000);
        QVERIFY2(notices.first().first().toString().contains("another add to library 'Locked' is running"),
                 qPrintable(notices.first().first().toString()));
        QCOMPARE(added.count(), 0);
        other.unlock();
        QVERIFY(added.wait(60000));
        QCOMPARE(w.sourceModel()->rowCount(), 1);
        // Stop while waiting: nothing is added, and the reason is given.
        QVERIFY(other.tryLock(0));
        notices.clear();
        added.clear();
        QSignalSpy result(w.worker(), &EngineWorker::sourceAdded);
        w.addSources({tmp_.path() + "/b.txt"});
        QTRY_VERIFY_WITH_TIMEOUT(!notices.isEmpty(), 30000);
        w.stop();
        QVERIFY(added.wait(30000));
        other.unlock();
        QCOMPARE(result.count(), 1);
        QVERIFY2(result.first().at(3).toString().contains("stopped waiting for another add"), qPrintable(result.first().at(3).toString()));
        QCOMPARE(w.sourceModel()->rowCount(), 1);
    }

    void cli_add_refuses_a_source_larger_than_the_context() {
        const QString data = tmp_.path() + "/cli-add";
        put(tmp_.path() + "/mid.txt", logbook(200));
        QCOMPARE(runQuire({"library", "create", "L", "--data-dir", data}), 0);
        QString out;
        QCOMPARE(runQuire({"add", "L", tmp_.path() + "/mid.txt", "--data-dir", data, "--context-limit", "9000"}, &out), 1);
        QVERIFY2(out.contains("alone needs") && out.contains("not added"), qPrintable(out));
        QCOMPARE(runQuire({"library", "show", "L", "--data-dir", data}, &out), 0);
        QVERIFY2(out.contains("0 sources"), qPrintable(out));
        QCOMPARE(runQuire({"add", "L", tmp_.path() + "/mid.txt", "--data-dir", data}, &out), 0);  // fits the default limit
    }

    void rename_and_delete_remove_their_states() {
        const QString data = tmp_.path() + "/delete";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        QAbstractItemModelTester t1(w.libraryModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QAbstractItemModelTester t2(w.chatModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        put(tmp_.path() + "/d.txt", logbook(30));
        const qint64 lib = libraryWith(w, "Doomed", {tmp_.path() + "/d.txt"});
        auto settings = app::LibraryDb::open(data + "/library.sqlite");
        QVERIFY(settings.value()->setSetting("max_tokens", "4").is_ok());
        QSignalSpy answered(&w, &MainWindow::answerDone);
        w.ask("First?");
        QVERIFY(answered.wait(120000));
        const qint64 first = answered.first().first().toLongLong();
        w.newChat();
        w.ask("Second?");
        QVERIFY(answered.wait(120000));
        const qint64 second = answered.last().first().toLongLong();
        QVERIFY(stateFiles(data).contains(QString("chat-%1.qstate").arg(first)));
        QVERIFY(stateFiles(data).contains(QString("chat-%1.qstate").arg(second)));
        QVERIFY(!stateFiles(data).filter(QString("library-%1-").arg(lib)).isEmpty());

        QVERIFY(w.renameLibrary(lib, "Renamed"));
        QCOMPARE(w.libraryModel()->nameOf(lib), QString("Renamed"));
        QVERIFY(!w.renameLibrary(lib, "Demo"));  // taken
        QVERIFY(w.renameChat(first, "Kept title"));
        QCOMPARE(w.chatModel()->data(w.chatModel()->index(w.chatModel()->rowOf(first))).toString(), QString("Kept title"));

        QVERIFY(w.deleteChat(first));
        QVERIFY(!stateFiles(data).contains(QString("chat-%1.qstate").arg(first)));
        QVERIFY(stateFiles(data).contains(QString("chat-%1.qstate").arg(second)));
        QCOMPARE(w.chatModel()->rowOf(first), -1);

        QVERIFY(w.deleteLibrary(lib));
        QCOMPARE(w.libraryModel()->rowOf(lib), -1);
        QVERIFY(stateFiles(data).filter(QString("library-%1-").arg(lib)).isEmpty());
        QVERIFY(!stateFiles(data).contains(QString("chat-%1.qstate").arg(second)));
        QVERIFY(w.currentLibrary() != lib);
        QVERIFY(QFile::exists(tmp_.path() + "/d.txt"));  // the user's file stays
    }

    void cli_rename_and_delete() {
        const QString data = tmp_.path() + "/cli-delete";
        put(tmp_.path() + "/c.txt", logbook(20));
        QString out;
        QCOMPARE(runQuire({"library", "create", "C", "--data-dir", data}), 0);
        QCOMPARE(runQuire({"add", "C", tmp_.path() + "/c.txt", "--data-dir", data}), 0);
        QCOMPARE(runQuire({"ask", "C", "One?", "--max-tokens", "4", "--data-dir", data}), 0);
        QCOMPARE(runQuire({"ask", "C", "Two?", "--max-tokens", "4", "--data-dir", data}), 0);
        QVERIFY(stateFiles(data).contains("chat-1.qstate"));
        QVERIFY(stateFiles(data).contains("chat-2.qstate"));
        QCOMPARE(runQuire({"library", "rename", "C", "D", "--data-dir", data}, &out), 0);
        QCOMPARE(runQuire({"library", "rename", "D", "bad\nname", "--data-dir", data}, &out), 1);
        QCOMPARE(runQuire({"chats", "D", "--delete", "1", "--data-dir", data}, &out), 0);
        QVERIFY2(out.contains("deleted chat 1") && out.contains("chat-1.qstate"), qPrintable(out));
        QVERIFY(!stateFiles(data).contains("chat-1.qstate"));
        QCOMPARE(runQuire({"chats", "D", "--delete", "1", "--data-dir", data}, &out), 1);  // gone
        QVERIFY(out.contains("has no chat 1"));
        QCOMPARE(runQuire({"chats", "D", "--delete", "zero", "--data-dir", data}), 2);
        QCOMPARE(runQuire({"library", "delete", "D", "--data-dir", data}, &out), 0);
        QVERIFY(stateFiles(data).isEmpty());
        QCOMPARE(runQuire({"library", "list", "--data-dir", data}, &out), 0);
        QVERIFY(!out.contains("D\t"));
        QCOMPARE(runQuire({"library", "delete", "D", "--data-dir", data}), 1);
    }

    void message_and_code_copy_regenerate_and_empty_chat() {
        const QString data = tmp_.path() + "/copy";
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        ChatView* v = w.chatView();
        w.newChat();
        QVERIFY(!v->copyEnabled());
        QVERIFY(!v->exportEnabled());
        const QString answer = "Use this:\n\n```cpp\nint main() { return 42; }\n```\n\nDone.";
        v->setTurns({{"How?", answer, QString()}});
        QVERIFY(v->copyEnabled());
        QVERIFY(v->exportEnabled());
        QUrl copy, code, regenerate;
        for (const auto& [text, url] : v->links()) {
            if (text == "Copy") copy = url;
            if (text == "Copy code") code = url;
            if (text == "Regenerate") regenerate = url;
        }
        QVERIFY(copy.isValid() && code.isValid() && regenerate.isValid());
        v->activateLink(code);
        QCOMPARE(QApplication::clipboard()->text(), QString("int main() { return 42; }\n"));
        QCOMPARE(v->feedbackText(), QString("Copied the code"));
        v->activateLink(copy);
        QCOMPARE(QApplication::clipboard()->text(), answer);
        QCOMPARE(v->feedbackText(), QString("Copied the answer"));
        QTRY_VERIFY_WITH_TIMEOUT(v->feedbackText().isEmpty(), 5000);  // the feedback goes away
        QSignalSpy again(v, &ChatView::regenerateRequested);
        v->activateLink(regenerate);
        QCOMPARE(again.count(), 1);
        QCOMPARE(again.first().first().toString(), QString("How?"));
        QTRY_VERIFY_WITH_TIMEOUT(!w.busy(), 60000);  // the window asked it again, in a new chat
    }
};

int main(int argc, char** argv) {
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    TestUiWindow t;
    return QTest::qExec(&t, argc, argv);
}
#include "test_ui_window.moc"
