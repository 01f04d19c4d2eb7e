// A stopped answer keeps its "stopped" mark after a restart (messages.stopped, schema 3), and
// Regenerate writes the chat's last answer again in place: same chat, same number of messages, the
// earlier turns untouched — offscreen, on the demo model.
#include <QComboBox>
#include <QSignalSpy>
#include <QtTest>

#include "chat_view.h"
#include "engine_worker.h"
#include "library/library_db.h"
#include "models/chat_list_model.h"
#include "ui_test_support.h"

using namespace quire;
using namespace quire::ui;
using namespace quire::test;

namespace {

// Shows chat `chatId` as picking it in the chat list does.
void pickChat(MainWindow& w, qint64 chatId) {
    for (QComboBox* box : w.findChildren<QComboBox*>())
        if (box->model() == w.chatModel()) {
            const int row = w.chatModel()->rowOf(chatId);
            box->setCurrentIndex(row);
            emit box->activated(row);
            return;
        }
    QFAIL("no chat picker");
}

QList<app::MessageRow> messagesOf(const QString& data, qint64 chat) {
    auto db = app::LibraryDb::open(data + "/library.sqlite");
    if (!db) return {};
    auto m = db.value()->messages(chat);
    return m ? m.value() : QList<app::MessageRow>{};
}

}  // namespace

class TestUiChatMarks : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void stopped_mark_survives_a_restart_and_regenerate_replaces_in_place() {
        const QString data = tmp_.path() + "/marks";
        qint64 library = 0, chat = 0;
        {
            MainWindow w(data, helper());
            w.show();
            waitReady(w);
            library = w.currentLibrary();
            QVERIFY(library > 0);  // the demo library
            auto db = app::LibraryDb::open(data + "/library.sqlite");
            QVERIFY(db.is_ok());
            QVERIFY(db.value()->setSetting("max_tokens", "8").is_ok());
            QSignalSpy answered(&w, &MainWindow::answerDone);
            w.ask("First question?");
            QVERIFY(answered.wait(60000));
            chat = answered.first().at(0).toLongLong();
            QVERIFY(chat > 0);
            // A long answer stopped after its first piece.
            QVERIFY(db.value()->setSetting("max_tokens", "4000").is_ok());
            answered.clear();
            connect(w.worker(), &EngineWorker::answerDelta, &w, [&w] { w.stop(); }, Qt::SingleShotConnection);
            w.ask("Tell me everything, at length.");
            QVERIFY(answered.wait(60000));
            QCOMPARE(answered.first().at(0).toLongLong(), chat);
            QVERIFY(w.chatView()->transcriptText().contains("stopped"));
        }
        const QList<app::MessageRow> before = messagesOf(data, chat);
        QCOMPARE(before.size(), 4);
        QVERIFY(!before[1].stopped);
        QVERIFY(before[3].stopped);

        // A new window on the same data: the stopped answer still says so, the complete one does not.
        MainWindow w(data, helper());
        w.show();
        waitReady(w);
        w.selectLibrary(library);
        pickChat(w, chat);
        QCOMPARE(w.currentChat(), chat);
        const QString shown = w.chatView()->transcriptText();
        QVERIFY2(shown.contains("stopped"), qPrintable(shown));
        QCOMPARE(shown.count("stopped"), 1);

        // Regenerate the stopped answer: written again in the same chat, in place.
        const int chatsBefore = w.chatModel()->rowCount();
        auto db = app::LibraryDb::open(data + "/library.sqlite");
        QVERIFY(db.value()->setSetting("max_tokens", "8").is_ok());
        QSignalSpy answered(&w, &MainWindow::answerDone);
        w.chatView()->activateLink(QUrl("quire-action:regenerate/1"));
        QVERIFY(answered.wait(60000));
        QCOMPARE(answered.first().at(0).toLongLong(), chat);
        QCOMPARE(w.currentChat(), chat);
        QCOMPARE(w.chatModel()->rowCount(), chatsBefore);  // no new chat
        const QList<app::MessageRow> after = messagesOf(data, chat);
        QCOMPARE(after.size(), 4);
        QCOMPARE(after[0].id, before[0].id);  // the first exchange untouched
        QCOMPARE(after[1].id, before[1].id);
        QCOMPARE(after[2].content, QString("Tell me everything, at length."));
        QCOMPARE(after[1].content, before[1].content);
        QVERIFY(after[3].tokens != before[3].tokens);  // a new answer (SQLite may reuse the freed row ids)
        QVERIFY(!after[3].stopped);  // this time it ran to its token limit
        const QString regenerated = w.chatView()->transcriptText();
        QCOMPARE(regenerated.count("Tell me everything, at length."), 1);
        QVERIFY(regenerated.contains("First question?"));
        QVERIFY(!regenerated.contains("stopped"));
        // And a follow-up continues from the regenerated answer (the chat's state matches its messages).
        answered.clear();
        w.ask("And then?");
        QVERIFY(answered.wait(60000));
        QCOMPARE(answered.first().at(0).toLongLong(), chat);
        QCOMPARE(messagesOf(data, chat).size(), 6);
        const qint64 computed = answered.first().at(1).toLongLong();
        QVERIFY2(computed > 0 && computed < 40, qPrintable(QString::number(computed)));  // only its own tokens
    }

    void regenerate_refuses_a_chat_without_an_answer() {
        auto db = app::LibraryDb::open(tmp_.path() + "/refuse.sqlite");
        QVERIFY(db.is_ok());
        auto lib = db.value()->createLibrary("book", "");
        QVERIFY(lib.is_ok());
        app::MessageRow q, a;
        q.role = "user", q.content = "q";
        a.role = "assistant", a.content = "a";
        auto chat = db.value()->recordExchange(0, lib.value(), "t", q, a);
        QVERIFY(chat.is_ok());
        QVERIFY(db.value()->replaceLastExchange(chat.value(), q, a).is_ok());
        QVERIFY(!db.value()->replaceLastExchange(chat.value() + 100, q, a).is_ok());  // no such chat: no messages
        QCOMPARE(db.value()->messages(chat.value()).value().size(), 2);
    }
};

QTEST_MAIN(TestUiChatMarks)
#include "test_ui_chat_marks.moc"
