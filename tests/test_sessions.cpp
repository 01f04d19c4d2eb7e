// The main job without the window: read a library once, answer every question from its saved
// state. Work done is asserted from the engine's counters (`quire ask --json`), not timings.
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLockFile>
#include <QProcess>
#include <QThread>
#include <QtTest>

#include <csignal>

#include <sys/wait.h>
#include <unistd.h>

#include "cli_runner.h"
#include "ingest/library_ingest.h"
#include "library/library_db.h"

using namespace quire::test;

class TestSessions : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString data_;
    QString demo(const char* rel) { return QString::fromStdString(std::string(QUIRE_SOURCE_DIR) + "/resources/demo/" + rel); }
    CliResult quire(QStringList args) {
        args << "--data-dir" << data_;
        return runQuire(args);
    }
    QJsonObject ask(const QString& lib, const QString& question, QStringList extra = {}) {
        const CliResult r = quire(QStringList{"ask", lib, question, "--json", "--max-tokens", "8", "--chunk", "512"} + extra);
        if (r.code != 0) qWarning("%s", qPrintable(r.err));
        return r.json();
    }

private slots:
    void init() {
        data_ = tmp_.path() + "/" + QTest::currentTestFunction();
        QDir().mkpath(data_);
    }

    void second_question_and_new_process_reuse_the_prefix() {
        QCOMPARE(quire({"library", "create", "book"}).code, 0);
        QCOMPARE(quire({"add", "book", demo("the-keeper-of-the-light.txt")}).code, 0);
        // First question: the library is read (context + question computed).
        const QJsonObject first = ask("book", "Who kept the light?");
        const qint64 context = first["context_tokens"].toInteger();
        QVERIFY(context > 1000);
        QCOMPARE(first["reused_state"].toBool(), false);
        QCOMPARE(first["prefilled_tokens"].toInteger(), context + first["question_tokens"].toInteger());
        // Another question in a new process: only the question's tokens are computed.
        const QJsonObject second = ask("book", "How many steps were there?");
        QCOMPARE(second["reused_state"].toBool(), true);
        QCOMPARE(second["prefilled_tokens"].toInteger(), second["question_tokens"].toInteger());
        // A follow-up in the first chat continues that chat's saved state.
        const QJsonObject follow = ask("book", "And the ship's name?", {"--chat", QString::number(first["chat"].toInteger())});
        QCOMPARE(follow["chat"].toInteger(), first["chat"].toInteger());
        QCOMPARE(follow["prefilled_tokens"].toInteger(), follow["question_tokens"].toInteger());
        // Chats and export.
        const CliResult chats = quire({"chats", "book"});
        QCOMPARE(chats.out.count('\n'), 2);
        const CliResult md = quire({"export", "book", QString::number(first["chat"].toInteger()), "--markdown"});
        QCOMPARE(md.code, 0);
        QVERIFY(md.out.contains("## Question\n\nWho kept the light?"));
        QVERIFY(md.out.contains("## Question\n\nAnd the ship's name?"));
        QCOMPARE(md.out.count("## Answer"), 2);
    }

    void adding_a_source_reads_only_the_new_source() {
        quire({"library", "create", "mixed"});
        quire({"add", "mixed", demo("the-keeper-of-the-light.txt")});
        const QJsonObject before = ask("mixed", "First?");
        QCOMPARE(quire({"add", "mixed", demo("wordcount")}).code, 0);
        const QJsonObject after = ask("mixed", "Second?");
        const qint64 added = after["context_tokens"].toInteger() - before["context_tokens"].toInteger();
        QVERIFY(added > 100);
        QCOMPARE(after["reused_state"].toBool(), true);
        QCOMPARE(after["prefilled_tokens"].toInteger(), added + after["question_tokens"].toInteger());
    }

    void corrupted_or_foreign_state_is_rebuilt_with_a_message() {
        quire({"library", "create", "c"});
        quire({"add", "c", demo("the-keeper-of-the-light.txt")});
        const QJsonObject first = ask("c", "Q1?");
        const qint64 context = first["context_tokens"].toInteger();
        // Corrupt the saved prefix state.
        const QStringList states = QDir(data_ + "/states").entryList({"library-*.qstate"});
        QCOMPARE(states.size(), 1);
        QFile f(data_ + "/states/" + states[0]);
        QVERIFY(f.open(QIODevice::ReadWrite));
        f.seek(f.size() / 2);
        f.write("CORRUPTED!");
        f.close();
        const QJsonObject rebuilt = ask("c", "Q2?");
        QVERIFY2(rebuilt["notices"].toArray().size() == 1, qPrintable(QJsonDocument(rebuilt).toJson()));
        QVERIFY(rebuilt["notices"].toArray()[0].toString().contains("unusable"));
        QCOMPARE(rebuilt["prefilled_tokens"].toInteger(), context + rebuilt["question_tokens"].toInteger());
        // Another model: the saved state is ignored, with a message, and the library read again.
        const QJsonObject other = ask("c", "Q3?", {"--model", QString::fromStdString(tiny_model("tiny-b"))});
        QVERIFY(other["notices"].toArray().size() >= 1);
        QVERIFY(other["notices"].toArray()[0].toString().contains("another model"));
        QCOMPARE(other["reused_state"].toBool(), false);
        // And back on the first model, its state (rebuilt above) is used again.
        const QJsonObject again = ask("c", "Q4?");
        QCOMPARE(again["prefilled_tokens"].toInteger(), again["question_tokens"].toInteger());
    }

    void context_that_does_not_fit_is_refused() {
        quire({"library", "create", "big"});
        quire({"add", "big", demo("the-keeper-of-the-light.txt"), demo("wordcount")});
        const CliResult r = quire({"ask", "big", "Q?", "--context-limit", "3000"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("more than the context limit of 3000"), qPrintable(r.err));
        QVERIFY(r.err.contains("largest sources: ") && r.err.contains("the-keeper-of-the-light.txt"));
    }

    void state_budget_evicts_least_recently_used() {
        for (const char* lib : {"l1", "l2", "l3"}) {
            quire({"library", "create", lib});
            quire({"add", lib, demo("the-keeper-of-the-light.txt")});
            const CliResult r = quire({"ask", lib, "Q?", "--json", "--max-tokens", "2", "--state-budget-mb", "8"});
            QCOMPARE(r.code, 0);
        }
        // Each prefix state is 3.2 MB on the tiny model (fp32 K/V): the third one pushes the total
        // past 8 MB, and the least recently used (l1's) goes.
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        auto states = db.value()->allPrefixStates();
        QVERIFY(states.is_ok());
        qint64 total = 0;
        for (const auto& s : states.value()) total += s.bytes;
        QVERIFY2(total <= (8 << 20), qPrintable(QString::number(total)));
        QCOMPARE(states->size(), qsizetype(2));
        QVERIFY(states->at(0).libraryId != 1 && states->at(1).libraryId != 1);
        QCOMPARE(QDir(data_ + "/states").entryList({"library-*.qstate"}).size(), states->size());
    }

    // The budget holds for the whole folder: the library in use keeps its prefix and the chat just
    // saved, and its older chats' deltas go (they used to pile up past the budget), and a budget
    // lowered below a state already saved removes it.
    void the_state_budget_covers_the_chats_of_the_library_in_use() {
        quire({"library", "create", "b"});
        quire({"add", "b", demo("the-keeper-of-the-light.txt")});
        const auto statesBytes = [&] {
            qint64 n = 0;
            for (const QFileInfo& f : QDir(data_ + "/states").entryInfoList(QDir::Files)) n += f.size();
            return n;
        };
        qint64 lastChat = 0;
        for (int i = 0; i < 6; ++i) {
            const CliResult r = quire({"ask", "b", QString("Question %1?").arg(i), "--json", "--max-tokens", "2", "--state-budget-mb", "4"});
            QCOMPARE(r.code, 0);
            lastChat = r.json()["chat"].toInteger();
            QVERIFY2(statesBytes() <= (4 << 20), qPrintable(QString::number(statesBytes())));
        }
        QVERIFY(QFile::exists(data_ + QString("/states/chat-%1.qstate").arg(lastChat)));
        QCOMPARE(QDir(data_ + "/states").entryList({"library-*.qstate"}).size(), qsizetype(1));
        // The library grows past the budget: its new state is not written, and the old one goes too.
        quire({"add", "b", demo("wordcount")});
        const CliResult r = quire({"ask", "b", "And now?", "--json", "--max-tokens", "2", "--state-budget-mb", "2"});
        QCOMPARE(r.code, 0);
        QVERIFY2(statesBytes() <= (2 << 20), qPrintable(QString::number(statesBytes())));
    }

    void a_state_larger_than_the_budget_is_not_written() {
        quire({"library", "create", "tight"});
        quire({"add", "tight", demo("the-keeper-of-the-light.txt")});
        // The tiny model's prefix state is 3.2 MB: a 1 MB budget (or none) holds no state at all.
        for (const char* budget : {"1", "0"}) {
            const CliResult r = quire({"ask", "tight", "Q?", "--json", "--max-tokens", "2", "--state-budget-mb", budget});
            QCOMPARE(r.code, 0);
            const QString notices = r.json()["notices"].toVariant().toStringList().join(" | ");
            QVERIFY2(notices.contains(QString("is larger than the state budget (%1 MB)").arg(budget)), qPrintable(notices));
            QVERIFY2(QDir(data_ + "/states").entryList({"library-*.qstate"}).isEmpty(), qPrintable(notices));
        }
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        QVERIFY(db.value()->allPrefixStates()->isEmpty());
        // The chats' deltas (~190 kB each) fit 1 MB one by one; together they are kept within it too,
        // though the library's state was never saved.
        for (int i = 0; i < 8; ++i) QCOMPARE(quire({"ask", "tight", "Again?", "--max-tokens", "2", "--state-budget-mb", "1"}).code, 0);
        qint64 states = 0;
        for (const QFileInfo& f : QDir(data_ + "/states").entryInfoList(QDir::Files)) states += f.size();
        QVERIFY2(states <= (1 << 20), qPrintable(QString::number(states)));
        // A budget that holds it: saved, and the next question reuses it.
        QCOMPARE(quire({"ask", "tight", "Q?", "--max-tokens", "2", "--state-budget-mb", "64"}).code, 0);
        QCOMPARE(QDir(data_ + "/states").entryList({"library-*.qstate"}).size(), qsizetype(1));
    }

    void library_commands() {
        QCOMPARE(quire({"library", "create", "x"}).code, 0);
        QVERIFY(quire({"library", "create", "x"}).err.contains("already exists"));
        QVERIFY(quire({"add", "nope", demo("wordcount")}).err.contains("no library named 'nope'"));
        QCOMPARE(quire({"add", "x", demo("wordcount")}).code, 0);
        QVERIFY(quire({"add", "x", demo("wordcount")}).err.contains("already in this library"));
        const CliResult slash = quire({"add", "x", demo("wordcount") + "/"});  // the same folder, written differently
        QVERIFY2(slash.code != 0 && slash.err.contains("already in this library"), qPrintable(slash.err));
        // A chat that does not exist is refused before the library is read (at 1M tokens, an hour).
        const CliResult noChat = quire({"ask", "x", "hi", "--chat", "999", "--chunk", "512"});
        QVERIFY2(noChat.code != 0 && noChat.err.contains("library 'x' has no chat 999"), qPrintable(noChat.err));
        QVERIFY2(!noChat.err.contains("reading:"), qPrintable(noChat.err));
        const CliResult show = quire({"library", "show", "x"});
        QVERIFY(show.out.contains("code, 6 files"));
        QVERIFY(show.out.contains("saved prefix state: none"));
        QVERIFY(quire({"library", "list"}).out.contains("x\t1 sources"));
        QCOMPARE(quire({"remove", "x", demo("wordcount")}).code, 0);
        QVERIFY(quire({"library", "list"}).out.contains("x\t0 sources"));
    }

    // A chat save that did not finish (killed, a full disk) leaves the state of the turn before,
    // with the token count the database recorded for it. The next follow-up starts from that point
    // and reads only the turn after it; it used to call the state unusable and replay the chat.
    void an_unfinished_chat_save_resumes_from_the_turn_before() {
        QCOMPARE(quire({"library", "create", "c"}).code, 0);
        QCOMPARE(quire({"add", "c", demo("the-keeper-of-the-light.txt")}).code, 0);
        const qint64 chat = ask("c", "First?")["chat"].toInteger();
        QVERIFY(chat > 0);
        const QString file = data_ + QString("/states/chat-%1.qstate").arg(chat);
        const QString kept = data_ + "/turn-one.qstate";
        QVERIFY(QFile::copy(file, kept));
        qint64 turnOne = 0, turnTwo = 0;
        {
            auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
            QVERIFY(db.is_ok());
            turnOne = db.value()->chat(chat).value()->stateTokens;
        }
        QVERIFY(!ask("c", "Second?", {"--chat", QString::number(chat)}).isEmpty());
        {  // as if the second turn's save had been killed before its rename
            auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
            QVERIFY(db.is_ok());
            const auto row = db.value()->chat(chat).value();
            turnTwo = row->stateTokens;
            QVERIFY(turnTwo > turnOne);
            QVERIFY(QFile::remove(file) && QFile::copy(kept, file));
            QVERIFY(db.value()->setChatState(chat, row->statePath, turnOne).is_ok());
        }
        const QJsonObject third = ask("c", "Third?", {"--chat", QString::number(chat)});
        QVERIFY2(third["notices"].toArray().isEmpty(), qPrintable(QJsonDocument(third).toJson()));
        QCOMPARE(third["prefilled_tokens"].toInteger(), (turnTwo - turnOne) + third["question_tokens"].toInteger());
    }

    // show names the saved state the next question starts from: after a remove it used to show the
    // largest saved state, of the library as it was before.
    void show_names_the_state_the_next_question_uses() {
        QCOMPARE(quire({"library", "create", "s"}).code, 0);
        QCOMPARE(quire({"add", "s", demo("wordcount"), demo("the-keeper-of-the-light.txt")}).code, 0);
        QVERIFY(!ask("s", "Q?").isEmpty());
        QVERIFY2(quire({"library", "show", "s"}).out.contains("(the whole library)"), "after the first question");
        QCOMPARE(quire({"remove", "s", demo("wordcount")}).code, 0);
        const CliResult stale = quire({"library", "show", "s"});
        QVERIFY2(stale.out.contains("saved prefix state: none usable for the library as it is now"), qPrintable(stale.out));
        QVERIFY(!ask("s", "Q?").isEmpty());
        QVERIFY2(quire({"library", "show", "s"}).out.contains("(the whole library)"), "after reading it again");
        // A state file changed on disk since it was saved is not named as usable either.
        const QStringList files = QDir(data_ + "/states").entryList({"library-*.qstate"});
        for (const QString& f : files) {
            QFile file(data_ + "/states/" + f);
            QVERIFY(file.open(QIODevice::Append));
            file.write("junk");
        }
        const CliResult changed = quire({"library", "show", "s"});
        QVERIFY2(changed.out.contains("saved prefix state: none usable"), qPrintable(changed.out));
    }

    // Sources added one at a time cannot take the library past the context limit either (each
    // was checked alone, and the sixth 198K-token file made every later question fail).
    void add_refuses_what_would_pass_the_context_limit() {
        QCOMPARE(quire({"library", "create", "full"}).code, 0);
        // The conversation keeps 8,192 tokens; the story alone fits 10,800, the story and the code do not.
        QCOMPARE(quire({"add", "full", demo("the-keeper-of-the-light.txt"), "--context-limit", "10800"}).code, 0);
        const CliResult more = quire({"add", "full", demo("wordcount"), "--context-limit", "10800"});
        QVERIFY(more.code != 0);
        QVERIFY2(more.err.contains("with the library's") && more.err.contains("not added"), qPrintable(more.err));
        QVERIFY(quire({"library", "list"}).out.contains("full\t1 sources"));
        QCOMPARE(quire({"add", "full", demo("wordcount"), "--context-limit", "12000"}).code, 0);
    }

    // Two adds at once each counted the library without the other's source, and together passed the
    // context limit. The second now waits for the first (the lock file names it). Each text here fits
    // the limit alone (~600K tokens of the 1M); together they do not.
    void two_adds_at_once_cannot_pass_the_context_limit() {
        QCOMPARE(quire({"library", "create", "full"}).code, 0);
        QByteArray story = read_all(demo("the-keeper-of-the-light.txt").toStdString());
        QByteArray big;
        for (int i = 0; big.size() < (1200 << 10); ++i) big += story + QByteArray::number(i) + "\n";
        const QString a = tmp_.path() + "/a.txt", b = tmp_.path() + "/b.txt";
        put(a, big);
        put(b, big + "b");
        const QString lock = data_ + "/library-1.add.lock";
        QProcess first, second;
        first.start(QString::fromStdString(quire_binary()), {"add", "full", a, "--data-dir", data_});
        QVERIFY(first.waitForStarted(30000));
        const qint64 firstPid = first.processId();
        for (int i = 0; i < 400 && !QFile::exists(lock) && first.state() != QProcess::NotRunning; ++i) QThread::msleep(25);
        QVERIFY2(QFile::exists(lock), "the first add never took its lock");
        second.start(QString::fromStdString(quire_binary()), {"add", "full", b, "--data-dir", data_});
        QVERIFY(first.waitForFinished(120000) && second.waitForFinished(120000));
        const QString firstErr = QString::fromUtf8(first.readAllStandardError()), err = QString::fromUtf8(second.readAllStandardError());
        QCOMPARE(first.exitCode(), 0);
        QVERIFY2(err.contains("another add to library 'full' is running (process " + QString::number(firstPid)), qPrintable(err));
        QVERIFY2(err.contains(lock), qPrintable(err));
        QCOMPARE(second.exitCode(), 1);
        QVERIFY2(err.contains("with the library's") && err.contains("not added"), qPrintable(firstErr + err));
        QVERIFY(quire({"library", "list"}).out.contains("full\t1 sources"));
        QVERIFY(!QFile::exists(lock));
        // Locks their holders left behind do not hold anyone up: a dead process's, one in no format
        // Qt reads.
        const pid_t child = ::fork();
        if (child == 0) {
            QLockFile left(lock);
            ::_exit(left.tryLock(0) ? 0 : 1);  // exits holding it: no unlock runs
        }
        int status = 0;
        QCOMPARE(::waitpid(child, &status, 0), child);
        QCOMPARE(WEXITSTATUS(status), 0);
        QVERIFY(QFile::exists(lock));
        const QString small = tmp_.path() + "/small.txt";
        put(small, "A small note.\n");
        CliResult after = quire({"add", "full", small});
        QVERIFY2(after.code == 0 && !after.err.contains("waiting"), qPrintable(after.err));
        QCOMPARE(quire({"remove", "full", small}).code, 0);
        put(lock, "garbage\n");
        after = quire({"add", "full", small});
        QVERIFY2(after.code == 0, qPrintable(after.err));
        QCOMPARE(quire({"remove", "full", small}).code, 0);
        // A lock path that is not a file is named, not waited on.
        QFile::remove(lock);
        QVERIFY(QDir().mkpath(lock));
        after = quire({"add", "full", small});
        QCOMPARE(after.code, 1);
        QVERIFY2(after.err.contains("is not a lock file"), qPrintable(after.err));
        QVERIFY(QDir(lock).removeRecursively());
    }

    // A source that would pass the context limit is refused before it is stored: an add killed
    // while it counted used to leave it in the library, and every question failed until it was removed.
    void an_interrupted_add_leaves_no_source_over_the_limit() {
        QCOMPARE(quire({"library", "create", "l"}).code, 0);
        QByteArray story = read_all(demo("the-keeper-of-the-light.txt").toStdString()), big;
        for (int i = 0; big.size() < (2600 << 10); ++i) big += story + QByteArray::number(i) + "\n";
        const QString path = tmp_.path() + "/too-big.txt";
        put(path, big);
        // Run to its end, it is refused by name; its time on this machine is measured.
        QElapsedTimer timer;
        timer.start();
        const CliResult r = quire({"add", "l", path});
        const qint64 fullMs = timer.elapsed();
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("alone needs") && r.err.contains("not added"), qPrintable(r.err));
        QVERIFY(quire({"library", "list"}).out.contains("l\t0 sources"));
        // Killed at 80 % of that time: well after the file was read (milliseconds), while the tokens
        // are counted (seconds for 1.3M). A source stored before it was counted would be there.
        QProcess add;
        timer.restart();
        add.start(QString::fromStdString(quire_binary()), {"add", "l", path, "--data-dir", data_});
        QVERIFY(add.waitForStarted(30000));
        QThread::msleep(static_cast<unsigned long>(std::max<qint64>(0, fullMs * 8 / 10 - timer.elapsed())));
        QVERIFY2(add.state() == QProcess::Running, "the add ended before it could be killed");
        ::kill(static_cast<pid_t>(add.processId()), SIGKILL);
        QVERIFY(add.waitForFinished(30000));
        QVERIFY(quire({"library", "list"}).out.contains("l\t0 sources"));
    }

    // Ctrl-C while the answer streams ends it there: the answer so far is saved, marked stopped, and
    // the exit status says a signal stopped it. (It used to end the process with nothing saved.)
    void ctrl_c_keeps_the_answer_so_far() {
        QCOMPARE(quire({"library", "create", "lib"}).code, 0);
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        QProcess p;
        p.start(QString::fromStdString(quire_binary()),
                {"ask", "lib", "Tell me everything.", "--max-tokens", "200000", "--chunk", "512", "--data-dir", data_});
        QVERIFY(p.waitForStarted());
        QByteArray streamed;
        for (int i = 0; i < 600 && streamed.size() < 64 && p.state() == QProcess::Running; ++i) {  // at most 60 s
            p.waitForReadyRead(100);
            streamed += p.readAllStandardOutput();
        }
        QVERIFY2(p.state() == QProcess::Running, "the answer ended before it could be interrupted");
        ::kill(static_cast<pid_t>(p.processId()), SIGINT);
        QVERIFY(p.waitForFinished(60000));
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 128 + SIGINT);
        QVERIFY2(err.contains("the answer so far is saved in chat 1"), qPrintable(err));
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        const auto messages = db.value()->messages(1).value();
        QCOMPARE(messages.size(), qsizetype(2));
        QVERIFY(messages[1].stopped);
        QVERIFY(!messages[1].content.isEmpty());
    }

    void damaged_database_is_refused_untouched() {
        QFile f(data_ + "/library.sqlite");
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray(8192, 'Z'));
        f.close();
        const QByteArray before = read_all((data_ + "/library.sqlite").toStdString());
        const CliResult r = quire({"library", "list"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("not a usable Quire library database"), qPrintable(r.err));
        QCOMPARE(read_all((data_ + "/library.sqlite").toStdString()), before);
    }
};

QTEST_GUILESS_MAIN(TestSessions)
#include "test_sessions.moc"
