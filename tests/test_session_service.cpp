// SessionService in one process: the second question computes only its own tokens; reading can be
// cancelled within one chunk and resumed; the library model stays consistent.
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QtTest>

#include "app_context.h"
#include "engine_test_support.h"
#include "ingest/source_ingest.h"
#include "session/session_service.h"
#include "session/source_token_cache.h"

using namespace quire;
using namespace quire::app;
using namespace quire::test;

// Adds resources/demo/NAME to a library.
void addDemoSource(LibraryDb& db, qint64 libId, const QString& name) {
    const IngestedSource src = ingestSource(QString(QUIRE_SOURCE_DIR) + "/resources/demo/" + name, {});
    SourceRow row;
    row.libraryId = libId;
    row.path = src.path;
    row.kind = src.kind;
    row.status = src.status;
    if (!db.addSource(row, src.text)) qFatal("cannot add the demo source");
}

// A library "book" holding the demo story.
LibraryRow addDemoBook(LibraryDb& db) {
    addDemoSource(db, db.createLibrary("book", "").value(), "the-keeper-of-the-light.txt");
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

    // A library is tokenized once while what its context is made of stays the same (a server answers
    // many questions on it); another source, or one taken away, makes it tokenize again.
    void the_library_is_tokenized_once_while_unchanged() {
        auto db = LibraryDb::open(tmp_.path() + "/tokenized_once.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        auto model = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(model, Precision::bf16);
        SessionOptions so;
        so.stateDir = tmp_.path() + "/tokenized_once_states";
        SessionService session(*db.value(), *engine, so);

        auto first = session.assemble(lib);
        QVERIFY(first.is_ok());
        QCOMPARE(session.tokenizations(), qint64(1));
        auto again = session.assemble(lib);
        QVERIFY(again.is_ok());
        QCOMPARE(session.tokenizations(), qint64(1));
        QCOMPARE(again->tokens, first->tokens);
        QCOMPARE(again->pieces.size(), first->pieces.size());
        QVERIFY(session.measure(lib).is_ok());  // without the limits: its own entry
        QVERIFY(session.measure(lib).is_ok());
        QCOMPARE(session.tokenizations(), qint64(2));
        // Reading and asking assemble it too, without tokenizing again.
        QVERIFY(session.read(lib, {}, nullptr).is_ok());
        QCOMPARE(session.tokenizations(), qint64(2));

        addDemoSource(*db.value(), lib.id, "README.md");
        auto grown = session.assemble(lib);
        QVERIFY(grown.is_ok());
        QCOMPARE(session.tokenizations(), qint64(3));
        QVERIFY(grown->tokens.size() > first->tokens.size());
        const auto sources = db.value()->sources(lib.id);
        QVERIFY(sources.is_ok() && sources->size() == 2);
        QVERIFY(db.value()->removeSource(sources->last().id).is_ok());
        auto back = session.assemble(lib);
        QVERIFY(back.is_ok());
        QCOMPARE(session.tokenizations(), qint64(4));
        QCOMPARE(back->tokens, first->tokens);
    }

    // Each source's ids are kept in the database: a new process (a new SessionService) encodes none
    // again and assembles the same tokens; another tokenizer, or a row that does not decode, is
    // encoded afresh.
    void a_new_process_reads_the_ids_kept_instead_of_encoding_again() {
        auto db = LibraryDb::open(tmp_.path() + "/kept_ids.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        addDemoSource(*db.value(), lib.id, "README.md");
        SessionOptions so;
        so.stateDir = tmp_.path() + "/kept_ids_states";
        auto model = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(model, Precision::bf16);
        std::vector<int32_t> first;
        {
            SessionService session(*db.value(), *engine, so);
            auto ctx = session.assemble(lib);
            QVERIFY(ctx.is_ok());
            QCOMPARE(session.sourcesEncoded(), qint64(2));
            first = ctx->tokens;
        }
        {
            SessionService session(*db.value(), *engine, so);
            auto ctx = session.assemble(lib);
            QVERIFY(ctx.is_ok());
            QCOMPARE(session.sourcesEncoded(), qint64(0));
            QCOMPARE(ctx->tokens, first);
        }
        // A kept row that does not decode to ids of this vocabulary is not used.
        const qint64 source = db.value()->sources(lib.id)->first().id;
        const QVector<quire::app::ContextSource> one{{source, "x", db.value()->sourceText(source).value()}};
        quire::app::DbSourceTokenCache cache(*db.value(), *engine->model().tokenizer());
        auto kept = cache.find(one.first());
        QVERIFY(kept.has_value());
        cache.store(one.first(), {static_cast<int32_t>(engine->model().config().vocab_size)});
        QVERIFY(!cache.find(one.first()).has_value());
        SessionService session(*db.value(), *engine, so);
        auto ctx = session.assemble(lib);
        QVERIFY(ctx.is_ok());
        QCOMPARE(session.sourcesEncoded(), qint64(1));
        QCOMPARE(ctx->tokens, first);
        // Another model's tokenizer: its own ids (they replace the kept ones).
        auto other = make_engine(load_model(tiny_model("tiny-b")), Precision::bf16);
        QVERIFY(other->model().tokenizer()->fingerprint() != engine->model().tokenizer()->fingerprint());
        SessionService otherSession(*db.value(), *other, so);
        QVERIFY(otherSession.assemble(lib).is_ok());
        QCOMPARE(otherSession.sourcesEncoded(), qint64(2));
    }

    // The ETA's cost line: a read long enough stores what it measured, per model and backend, for the
    // next read; a shorter one stores nothing.
    void a_long_read_stores_its_cost_for_the_next() {
        auto db = LibraryDb::open(tmp_.path() + "/cost.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        auto model = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(model, Precision::bf16);
        SessionOptions so;
        so.stateDir = tmp_.path() + "/cost-states";
        so.chunk = 256;
        so.readCostMinTokens = 1 << 20;  // longer than the book: nothing learned
        {
            SessionService session(*db.value(), *engine, so);
            QVERIFY(session.read(lib, {}, nullptr).is_ok());
            QVERIFY(db.value()->setting("read_cost:cpu:" + session.fingerprint()).value().isEmpty());
            const auto states = db.value()->prefixStates(lib.id);  // kept: value() is a reference into it
            QVERIFY(states.is_ok());
            for (const auto& s : states.value()) QVERIFY(db.value()->deletePrefixState(s.id).is_ok());
        }
        QVERIFY(QDir(so.stateDir).removeRecursively());
        so.readCostMinTokens = 1024;
        SessionService session(*db.value(), *engine, so);
        std::vector<double> etas;
        auto read = session.read(lib, [&](const ReadProgress& p) { etas.push_back(p.etaSeconds); }, nullptr);
        QVERIFY(read.is_ok());
        QVERIFY(read->prefilledTokens > 1024);  // read again from scratch
        QVERIFY(etas.size() > 4);
        for (double e : etas) QVERIFY(std::isfinite(e) && e >= 0);
        QCOMPARE(etas.back(), 0.0);
        const QString stored = db.value()->setting("read_cost:cpu:" + session.fingerprint()).value();
        QVERIFY2(ReadCostModel::fromString(stored).valid(), qPrintable(stored));
    }

    // A chat's state is a delta on its library's prefix: small, the prefix file never rewritten, a
    // new process continues the chat computing only the new question; a changed library makes the
    // delta unusable and the chat replays with a notice; eviction takes a prefix's deltas with it,
    // and chat states count against the budget.
    void chat_states_are_deltas_on_the_prefix() {
        const QString dir = tmp_.path() + "/delta";
        QDir().mkpath(dir);
        auto db = LibraryDb::open(dir + "/library.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        auto model = load_model(tiny_model("tiny-a"));
        SessionOptions so;
        so.stateDir = dir + "/states";
        so.chunk = 512;
        AskOptions o;
        o.generation.max_tokens = 5;
        qint64 chatId = 0;
        QString prefixFile, chatFile;
        {
            auto engine = make_engine(model, Precision::bf16);
            SessionService session(*db.value(), *engine, so);
            auto first = session.ask(lib, "Who kept the light?", o);
            QVERIFY2(first.is_ok(), first.status().message().c_str());
            chatId = first->chatId;
            prefixFile = dir + "/" + db.value()->prefixStates(lib.id)->first().path;
            chatFile = dir + "/" + db.value()->chat(chatId).value()->statePath;
        }
        const qint64 prefixBytes = QFileInfo(prefixFile).size(), chatBytes = QFileInfo(chatFile).size();
        QVERIFY2(chatBytes * 4 < prefixBytes, qPrintable(QString("chat %1 bytes, prefix %2").arg(chatBytes).arg(prefixBytes)));
        const QDateTime prefixWritten = QFileInfo(prefixFile).lastModified();
        {
            // A new process: the prefix state and the chat's delta, then only the question.
            auto engine = make_engine(model, Precision::bf16);
            SessionService session(*db.value(), *engine, so);
            AskOptions follow = o;
            follow.chatId = chatId;
            auto next = session.ask(lib, "And then?", follow);
            QVERIFY2(next.is_ok(), next.status().message().c_str());
            QCOMPARE(next->prefilledTokens, next->questionTokens);
            QVERIFY2(next->notices.isEmpty(), qPrintable(next->notices.join("; ")));
        }
        QCOMPARE(QFileInfo(prefixFile).lastModified(), prefixWritten);  // a follow-up never rewrites the prefix
        QCOMPARE(QFileInfo(prefixFile).size(), prefixBytes);
        {
            // A damaged prefix state: read again from the library, with a notice; the chat's delta
            // fits the prefix read again (the same tokens) and the chat goes on.
            QFile f(prefixFile);
            QVERIFY(f.open(QIODevice::ReadWrite));
            QVERIFY(f.seek(f.size() / 2));
            QVERIFY(f.putChar('\x5a'));
            f.close();
            auto engine = make_engine(model, Precision::bf16);
            SessionService session(*db.value(), *engine, so);
            AskOptions follow = o;
            follow.chatId = chatId;
            auto next = session.ask(lib, "Once more?", follow);
            QVERIFY2(next.is_ok(), next.status().message().c_str());
            QVERIFY2(next->notices.join(" ").contains("unusable"), qPrintable(next->notices.join("; ")));
            QCOMPARE(next->prefilledTokens, next->contextTokens + next->questionTokens);  // the library, then only the question
        }
        {
            // The library changes: the chat's delta no longer fits its prefix; the chat replays.
            addDemoSource(*db.value(), lib.id, "wordcount");
            auto engine = make_engine(model, Precision::bf16);
            SessionService session(*db.value(), *engine, so);
            AskOptions follow = o;
            follow.chatId = chatId;
            auto next = session.ask(lib, "Still there?", follow);
            QVERIFY2(next.is_ok(), next.status().message().c_str());
            QVERIFY2(next->notices.join(" ").contains("replaying"), qPrintable(next->notices.join("; ")));
        }
        {
            // A budget that holds every prefix state but not the chats' deltas too: chat states count,
            // so a prefix goes (the least recently used: the book's), and its chats' deltas with it.
            addDemoSource(*db.value(), db.value()->createLibrary("other", "").value(), "wordcount");
            const LibraryRow otherLib = *db.value()->library("other").value();
            auto engine = make_engine(model, Precision::bf16);
            {
                SessionService session(*db.value(), *engine, so);
                QVERIFY(session.ask(otherLib, "What does it count?", o).is_ok());
            }
            qint64 prefixes = 0;
            const QList<PrefixStateRow> rows = db.value()->allPrefixStates().value();
            for (const PrefixStateRow& r : rows) prefixes += r.bytes;
            const qsizetype bookPrefixes = db.value()->prefixStates(lib.id)->size();
            SessionOptions small = so;
            small.stateBudgetBytes = prefixes + 1;
            SessionService session(*db.value(), *engine, small);
            auto ask = session.ask(otherLib, "And what else?", o);
            QVERIFY2(ask.is_ok(), ask.status().message().c_str());
            QVERIFY(db.value()->prefixStates(lib.id)->size() < bookPrefixes);
            QCOMPARE(db.value()->prefixStates(otherLib.id)->size(), qsizetype(1));  // the one in use stays
            const QList<ChatRow> bookChats = db.value()->chats(lib.id).value();
            for (const ChatRow& c : bookChats) QVERIFY2(c.statePath.isEmpty(), qPrintable(c.statePath));
            // No delta left on disk without its prefix: every chat state file belongs to a library
            // that still has a prefix state.
            const QList<LibraryRow> all = db.value()->libraries().value();
            for (const LibraryRow& l : all) {
                const QList<ChatRow> chats = db.value()->chats(l.id).value();
                for (const ChatRow& c : chats)
                    if (!c.statePath.isEmpty()) QVERIFY(!db.value()->prefixStates(l.id)->isEmpty());
            }
            QVERIFY(!QFile::exists(chatFile));
        }
    }

    // A library read again after an add saves a state that extends the earlier one: the earlier one goes
    // (at 1M tokens each such file is ~8 GB, and every add-then-ask used to leave one behind until the
    // budget ran out), with the chat deltas saved on it. A state of another model stays.
    void a_state_the_new_one_extends_is_removed() {
        QDir().mkpath(tmp_.path() + "/superseded");
        auto db = LibraryDb::open(tmp_.path() + "/superseded/library.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        auto model = load_model(tiny_model("tiny-a"));
        SessionOptions so;
        so.stateDir = tmp_.path() + "/superseded/states";
        QVERIFY(QDir().mkpath(so.stateDir));
        // A state another model saved for this library: not this session's to judge.
        PrefixStateRow foreign;
        foreign.libraryId = lib.id;
        foreign.path = "states/library-foreign.qstate";
        foreign.modelFingerprint = "another model";
        foreign.tokenCount = 5;
        QVERIFY(db.value()->addPrefixState(foreign).is_ok());
        auto engine = make_engine(model, Precision::bf16);
        QString first, chatFile;
        qint64 chatId = 0;
        {
            SessionService session(*db.value(), *engine, so);
            AskOptions o;
            o.generation.max_tokens = 3;
            auto asked = session.ask(lib, "Who kept the light?", o);
            QVERIFY2(asked.is_ok(), asked.status().message().c_str());
            chatId = asked->chatId;
            chatFile = tmp_.path() + "/superseded/" + db.value()->chat(chatId).value()->statePath;
            QVERIFY(QFile::exists(chatFile));
            const QList<PrefixStateRow> rows = db.value()->prefixStates(lib.id).value();
            QCOMPARE(rows.size(), qsizetype(2));
            first = tmp_.path() + "/superseded/" + rows.first().path;
            QVERIFY(QFile::exists(first));
        }
        addDemoSource(*db.value(), lib.id, "wordcount");
        SessionService session(*db.value(), *engine, so);
        auto again = session.read(lib, {}, nullptr);
        QVERIFY2(again.is_ok(), again.status().message().c_str());
        QVERIFY(again->reusedState);
        QVERIFY(again->prefilledTokens > 0 && again->prefilledTokens < again->contextTokens);
        const QList<PrefixStateRow> rows = db.value()->prefixStates(lib.id).value();
        QCOMPARE(rows.size(), qsizetype(2));
        QCOMPARE(rows.first().tokenCount, again->contextTokens);
        QCOMPARE(rows.last().modelFingerprint, QString("another model"));
        QVERIFY(!QFile::exists(first));
        // The chat's delta was saved on the shorter prefix and cannot continue the longer one: it went too.
        QVERIFY(db.value()->chat(chatId).value()->statePath.isEmpty());
        QVERIFY(!QFile::exists(chatFile));
        QCOMPARE(QDir(so.stateDir).entryList({"*.qstate"}, QDir::Files).size(), qsizetype(1));
    }

    // The library's state is saved after the answer, not before its first word (8.5 GB at 1M tokens
    // kept the first byte waiting ~8 s); an ask that fails after reading still saves what it read.
    void the_state_is_saved_after_the_answer() {
        const QString dir = tmp_.path() + "/after-answer";
        QVERIFY(QDir().mkpath(dir + "/states"));
        auto db = LibraryDb::open(dir + "/library.sqlite");
        QVERIFY(db.is_ok());
        const LibraryRow lib = addDemoBook(*db.value());
        auto model = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(model, Precision::bf16);
        SessionOptions so;
        so.stateDir = dir + "/states";
        const auto prefixFiles = [&] { return QDir(so.stateDir).entryList({"library-*.qstate"}, QDir::Files).size(); };
        {
            SessionService session(*db.value(), *engine, so);
            AskOptions o;
            o.generation.max_tokens = 4;
            qsizetype filesAtFirstWord = -1;
            o.onText = [&](const QString&) {
                if (filesAtFirstWord < 0) filesAtFirstWord = prefixFiles();
            };
            QStringList said;  // what the user is told while the state is written
            o.onStatus = [&](const QString& s) { said << s; };
            auto r = session.ask(lib, "Who kept the light?", o);
            QVERIFY2(r.is_ok(), r.status().message().c_str());
            QCOMPARE(filesAtFirstWord, qsizetype(0));
            QCOMPARE(said.size(), qsizetype(1));
            QVERIFY2(said[0].startsWith("saving the library's state (") && said[0].endsWith(" MB) for the next questions"), qPrintable(said[0]));
            auto second = session.ask(lib, "And then?", o);  // nothing new to save: nothing said
            QVERIFY(second.is_ok());
            QCOMPARE(said.size(), qsizetype(1));
            QCOMPARE(prefixFiles(), qsizetype(1));
            QCOMPARE(db.value()->prefixStates(lib.id)->size(), qsizetype(1));
            const ChatRow chat = *db.value()->chat(r->chatId).value();
            QVERIFY(!chat.statePath.isEmpty());
        }
        // A question that does not fit fails after the library was read: what was read is saved anyway.
        addDemoSource(*db.value(), lib.id, "wordcount");
        SessionService measure(*db.value(), *engine, so);
        const auto tokens = static_cast<qint64>(measure.measure(lib)->tokens.size());
        SessionOptions tight = so;
        tight.conversationReserve = 0;
        tight.contextLimit = tokens + 3;
        SessionService session(*db.value(), *engine, tight);
        auto refused = session.ask(lib, "A question far too long to fit in the three tokens left of the context", {});
        QCOMPARE(refused.status().code(), ErrorCode::out_of_range);
        QCOMPARE(prefixFiles(), qsizetype(1));  // the longer state, which replaced the shorter
        QCOMPARE(db.value()->prefixStates(lib.id)->first().tokenCount, tokens);
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
