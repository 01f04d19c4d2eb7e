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

// The engine under test, except that every state save fails as on a full disk.
class FullDiskEngine : public Engine {
public:
    explicit FullDiskEngine(Engine& inner) : inner_(inner) {}
    const Model& model() const override { return inner_.model(); }
    const EngineOptions& options() const override { return inner_.options(); }
    Backend backend() const override { return inner_.backend(); }
    std::unique_ptr<Sequence> new_sequence() override { return inner_.new_sequence(); }
    Status prefill(Sequence& seq, const PrefillRequest& request, std::vector<std::vector<float>>* logits) override {
        return inner_.prefill(seq, request, logits);
    }
    Status decode(Sequence& seq, int32_t token, std::vector<float>* logits) override { return inner_.decode(seq, token, logits); }
    Status save_state(const Sequence&, const std::string& path) override {
        ++saves;
        return Status(ErrorCode::io_error, path + ".tmp: write failed: No space left on device");
    }
    Result<std::unique_ptr<Sequence>> load_state(const std::string& path, const std::vector<int32_t>* expected) override {
        return inner_.load_state(path, expected);
    }
    int saves = 0;

private:
    Engine& inner_;
};

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

    void full_disk_during_state_saves_keeps_the_answer_and_the_chat() {
        QDir().mkpath(tmp_.path() + "/full");
        auto db = LibraryDb::open(tmp_.path() + "/full/library.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        const qint64 libId = lib.id;
        auto model = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(model, Precision::bf16);
        FullDiskEngine full(*engine);
        SessionOptions so;
        so.stateDir = tmp_.path() + "/full/states";
        SessionService session(*db.value(), full, so);
        AskOptions o;
        o.generation.max_tokens = 4;
        auto r = session.ask(lib, "Who kept the light?", o);
        QVERIFY2(r.is_ok(), r.status().message().c_str());
        QCOMPARE(full.saves, 2);  // the library's state and the chat's
        QVERIFY(!r->answer.isEmpty());
        const QString notices = r->notices.join('\n');
        QVERIFY2(notices.contains("could not save the library's state") && notices.contains("No space left on device"), qPrintable(notices));
        QVERIFY2(notices.contains("could not save the chat state"), qPrintable(notices));
        QCOMPARE(db.value()->messages(r->chatId)->size(), qsizetype(2));  // the chat is kept
        QVERIFY(db.value()->prefixStates(libId)->isEmpty());                // nothing recorded that is not on disk
        QVERIFY(db.value()->chat(r->chatId).value()->statePath.isEmpty());
        // A follow-up still works (the chat replays its tokens).
        AskOptions follow = o;
        follow.chatId = r->chatId;
        auto again = session.ask(lib, "Why?", follow);
        QVERIFY2(again.is_ok(), again.status().message().c_str());
        QCOMPARE(db.value()->messages(r->chatId)->size(), qsizetype(4));
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
