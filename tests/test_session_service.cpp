// SessionService in one process: the second question computes only its own tokens; reading can be
// cancelled within one chunk and resumed; the library model stays consistent.
#include <QDir>
#include <QtTest>

#include "app_context.h"
#include "engine_test_support.h"
#include "ingest/source_ingest.h"
#include "session/session_service.h"

using namespace quire;
using namespace quire::app;
using namespace quire::test;

// A library "book" holding the demo story.
LibraryRow addDemoBook(LibraryDb& db) {
    const qint64 libId = db.createLibrary("book", "").value();
    const IngestedSource src = ingestSource(QString(QUIRE_SOURCE_DIR) + "/resources/demo/the-keeper-of-the-light.txt", {});
    SourceRow row;
    row.libraryId = libId;
    row.path = src.path;
    row.kind = src.kind;
    row.status = src.status;
    if (!db.addSource(row, src.text)) qFatal("cannot add the demo source");
    return *db.library("book").value();
}

class TestSessionService : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void second_question_in_process_and_cancel() {
        auto db = LibraryDb::open(tmp_.path() + "/library.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());

        auto model = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(model, Precision::bf16);
        SessionOptions so;
        so.stateDir = tmp_.path() + "/states";
        so.chunk = 256;
        SessionService session(*db.value(), *engine, so);

        // Reading can be cancelled within one chunk.
        std::atomic<bool> cancel{false};
        std::vector<qint64> seen;
        auto r = session.read(lib, [&](const ReadProgress& p) {
            seen.push_back(p.done);
            QVERIFY(p.tokensPerSecond > 0);
            if (p.done >= 512) cancel = true;
        }, &cancel);
        QCOMPARE(r.status().code(), ErrorCode::cancelled);
        QCOMPARE(seen.back(), qint64(512));
        QCOMPARE(engine->counters().prefilled_tokens, int64_t(512));
        // Reading again continues where it stopped.
        auto done = session.read(lib, {}, nullptr);
        QVERIFY(done.is_ok());
        QCOMPARE(done->prefilledTokens, done->contextTokens - 512);

        AskOptions o;
        o.generation.max_tokens = 6;
        QString streamed;
        o.onText = [&](const QString& d) { streamed += d; };
        auto first = session.ask(lib, "Who kept the light?", o);
        QVERIFY(first.is_ok());
        QCOMPARE(first->prefilledTokens, first->questionTokens);  // the library was read above
        QCOMPARE(streamed, first->answer);
        auto second = session.ask(lib, "How many steps?", o);
        QVERIFY(second.is_ok());
        QCOMPARE(second->prefilledTokens, second->questionTokens);
        QVERIFY(second->chatId != first->chatId);
        AskOptions follow = o;
        follow.chatId = first->chatId;
        auto third = session.ask(lib, "Why?", follow);
        QVERIFY(third.is_ok());
        QCOMPARE(third->prefilledTokens, third->questionTokens);
        auto messages = db.value()->messages(first->chatId);
        QCOMPARE(messages->size(), qsizetype(4));
    }

    void a_state_file_is_recorded_once() {
        QDir().mkpath(tmp_.path() + "/once");
        auto db = LibraryDb::open(tmp_.path() + "/once/library.sqlite");
        QVERIFY(db.is_ok());
        const qint64 libId = db.value()->createLibrary("book", "").value();
        PrefixStateRow row;
        row.libraryId = libId;
        row.path = "states/library-1-x.qstate";
        row.tokenCount = 10;
        auto first = db.value()->addPrefixState(row);
        row.tokenCount = 11;
        auto second = db.value()->addPrefixState(row);  // a second process saved the same state
        QVERIFY(first.is_ok() && second.is_ok());
        QCOMPARE(second.value(), first.value());
        QCOMPARE(db.value()->prefixStates(libId)->size(), qsizetype(1));
        QCOMPARE(db.value()->prefixStates(libId)->first().tokenCount, qint64(11));
    }
};

QTEST_GUILESS_MAIN(TestSessionService)
#include "test_session_service.moc"
