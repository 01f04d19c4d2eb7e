// Quire used as a careless or hostile user would (issue 16): odd files, odd names, output that
// cannot be written, questions too long for the context, stale temporary files, relative folders.
// Each case failed (or hung, bounded here by a time limit) before its fix.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QProcess>
#include <QSet>
#include <QtTest>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_runner.h"
#include "sleeping_process.h"
#include "library/library_db.h"

using namespace quire::test;

class TestHardening : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString data_;
    QString demo(const char* rel) { return QString(QUIRE_SOURCE_DIR) + "/resources/demo/" + rel; }
    CliResult quire(QStringList args, int timeoutMs = 60000) {
        args << "--data-dir" << data_;
        return runQuire(args, timeoutMs);
    }
    QString fifo(const QString& path) {
        QDir().mkpath(QFileInfo(path).absolutePath());
        if (::mkfifo(QFile::encodeName(path).constData(), 0600) != 0) qWarning("mkfifo %s failed", qPrintable(path));
        return path;
    }

private slots:
    void init() {
        data_ = tmp_.path() + "/" + QTest::currentTestFunction();
        QDir().mkpath(data_);
        QCOMPARE(quire({"library", "create", "lib"}).code, 0);
    }

    void write_errors_on_stdout_fail_the_command() {
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        const CliResult a = quire({"ask", "lib", "Who?", "--json", "--max-tokens", "2"});
        QVERIFY2(a.code == 0, qPrintable(a.err));
        const QString chat = QString::number(a.json()["chat"].toInteger());
        for (const QStringList& args : {QStringList{"export", "lib", chat, "--markdown"}, QStringList{"library", "list"}}) {
            QProcess p;
            p.setStandardOutputFile("/dev/full");
            p.start(QString::fromStdString(quire_binary()), args + QStringList{"--data-dir", data_});
            QVERIFY(p.waitForFinished(60000));
            QVERIFY2(p.exitCode() != 0, qPrintable(args.join(' ') + " > /dev/full reported success"));
            QVERIFY(QString::fromUtf8(p.readAllStandardError()).contains("could not write the output"));
        }
        const QString tokens = tmp_.path() + "/three-tokens.txt";
        put(tokens, "1 2 3\n");
        const CliResult logits = runQuire({"logits", "--model", QString::fromStdString(tiny_model("tiny-a")), "--tokens", tokens, "--out", "/dev/full"});
        QVERIFY2(logits.code == 1 && logits.err.contains("cannot write /dev/full"), qPrintable(logits.err));
    }

    void library_names_with_control_characters_are_refused() {
        for (const QString& name : {QString("two\nlines"), QString("tab\there"), QString("cr\r")}) {
            const CliResult r = quire({"library", "create", name});
            QCOMPARE(r.code, 1);
            QVERIFY2(r.err.contains("control character"), qPrintable(r.err));
        }
        QCOMPARE(quire({"library", "list"}).out, QString("lib\t0 sources\n"));
    }

    void only_regular_files_are_read() {
        const QString f = fifo(tmp_.path() + "/fifo-source");
        const QString dev = "/dev/zero";
        for (const QString& source : {dev, f}) {
            const CliResult r = quire({"add", "lib", source}, 30000);
            QVERIFY2(r.code == 1, qPrintable(QString("exit %1 for %2 (a hang is -1)").arg(r.code).arg(source)));
            QVERIFY2(r.out.contains("not a regular file"), qPrintable(r.out + r.err));
        }
        // A folder whose .gitignore is a FIFO: read without it, and say so.
        const QString tree = tmp_.path() + "/tree";
        put(tree + "/main.c", "int main(void) { return 0; }\n");
        fifo(tree + "/.gitignore");
        const CliResult r = quire({"add", "lib", tree}, 30000);
        QVERIFY2(r.code == 0, qPrintable(QString("exit %1: %2").arg(r.code).arg(r.err)));
        QVERIFY2(r.out.contains(".gitignore: not used") && r.out.contains("not a regular file"), qPrintable(r.out));
        // --load-state and --tokens on a FIFO.
        const QString tokens = tmp_.path() + "/tokens.txt";
        put(tokens, "1 2 3\n");
        const QString model = QString::fromStdString(tiny_model("tiny-a"));
        const CliResult load = runQuire({"logits", "--model", model, "--tokens", tokens, "--out", tmp_.path() + "/o",
                                         "--load-state", fifo(tmp_.path() + "/fifo-state")},
                                        30000);
        QVERIFY2(load.code == 1 && load.err.contains("not a regular file"), qPrintable(QString("exit %1: %2").arg(load.code).arg(load.err)));
        const CliResult tok = runQuire({"logits", "--model", model, "--tokens", fifo(tmp_.path() + "/fifo-tokens"), "--out",
                                        tmp_.path() + "/o"},
                                       30000);
        QVERIFY2(tok.code == 2 && tok.err.contains("not a regular file"), qPrintable(QString("exit %1: %2").arg(tok.code).arg(tok.err)));
    }

    void file_names_that_are_not_utf8_are_listed_as_skipped() {
        const QString tree = tmp_.path() + "/latin1";
        put(tree + "/ok.txt", "fine\n");
        const QByteArray bad = QFile::encodeName(tree) + "/caf\xe9.txt";
        const int fd = ::open(bad.constData(), O_CREAT | O_WRONLY, 0600);
        QVERIFY(fd >= 0);
        QCOMPARE(::write(fd, "text\n", 5), ssize_t(5));
        ::close(fd);
        const CliResult r = quire({"add", "lib", tree});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains("caf\\xe9.txt: the file name is not UTF-8"), qPrintable(r.out));
        QVERIFY2(r.out.contains("1 files"), qPrintable(r.out));
    }

    void two_writers_at_once_wait_for_each_other() {
        // Four processes adding eight files each at the same moment: every one must succeed.
        QList<QProcess*> procs;
        QStringList expected;
        for (int p = 0; p < 4; ++p) {
            QStringList args{"add", "lib"};
            for (int i = 0; i < 8; ++i) {
                const QString f = tmp_.path() + QString("/concurrent/p%1_%2.txt").arg(p).arg(i);
                put(f, QString("note %1 of writer %2\n").arg(i).arg(p).toUtf8());
                args << f;
                expected << f;
            }
            auto* proc = new QProcess(this);
            proc->start(QString::fromStdString(quire_binary()), args + QStringList{"--data-dir", data_});
            procs << proc;
        }
        for (QProcess* proc : procs) {
            QVERIFY(proc->waitForFinished(120000));
            QVERIFY2(proc->exitCode() == 0, proc->readAllStandardError().constData());
            delete proc;
        }
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        auto sources = db.value()->sources(db.value()->library("lib").value()->id);
        QCOMPARE(sources->size(), expected.size());
    }

    void two_asks_at_once_record_each_state_once() {
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        QProcess a, b;
        const QStringList args{"ask", "lib", "Who?", "--json", "--max-tokens", "2", "--data-dir", data_};
        a.start(QString::fromStdString(quire_binary()), args);
        b.start(QString::fromStdString(quire_binary()), args);
        QVERIFY(a.waitForFinished(120000) && b.waitForFinished(120000));
        QCOMPARE(a.exitCode(), 0);
        QCOMPARE(b.exitCode(), 0);
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        auto states = db.value()->allPrefixStates();
        QVERIFY(states.is_ok());
        QSet<QString> paths;
        for (const auto& st : states.value()) {
            QVERIFY2(!paths.contains(st.path), qPrintable(st.path + " is recorded twice"));
            paths.insert(st.path);
            QVERIFY2(QFile::exists(QDir(data_).filePath(st.path)), qPrintable(st.path));
        }
        QCOMPARE(QDir(data_ + "/states").entryList({"library-*.qstate"}).size(), paths.size());
        // Both chats were recorded whole.
        const auto chats = db.value()->chats(1);
        QVERIFY(chats.is_ok());
        for (const auto& c : chats.value()) QCOMPARE(db.value()->messages(c.id)->size(), qsizetype(2));
    }

    void an_answer_cut_short_leaves_no_empty_chat() {
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        // The reader goes away after one byte: quire dies of SIGPIPE while streaming the answer.
        QProcess sh;
        sh.start("/bin/sh", {"-c", QString("'%1' ask lib 'Tell me everything.' --max-tokens 64 --data-dir '%2' | head -c 1")
                                       .arg(QString::fromStdString(quire_binary()), data_)});
        QVERIFY(sh.waitForFinished(120000));
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        const auto chats = db.value()->chats(1);
        QVERIFY(chats.is_ok());
        for (const auto& c : chats.value()) {
            const auto messages = db.value()->messages(c.id);
            QVERIFY2(messages->size() == 2, qPrintable(QString("chat %1 has %2 messages").arg(c.id).arg(messages->size())));
        }
    }

    void relative_data_dir_works_from_another_working_directory() {
        const QString parent = tmp_.path() + "/cwd-a";
        QDir().mkpath(parent + "/rel");
        QDir().mkpath(tmp_.path() + "/cwd-b");
        auto run = [&](const QString& cwd, const QStringList& args) {
            QProcess p;
            p.setWorkingDirectory(cwd);
            p.start(QString::fromStdString(quire_binary()), args);
            p.waitForFinished(120000);
            return CliResult{p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()), QString::fromUtf8(p.readAllStandardError())};
        };
        QCOMPARE(run(parent, {"library", "create", "r", "--data-dir", "rel"}).code, 0);
        QCOMPARE(run(parent, {"add", "r", demo("the-keeper-of-the-light.txt"), "--data-dir", "rel"}).code, 0);
        const CliResult first = run(parent, {"ask", "r", "Who?", "--json", "--max-tokens", "2", "--data-dir", "rel"});
        QVERIFY2(first.code == 0, qPrintable(first.err));
        const CliResult second = run(tmp_.path() + "/cwd-b", {"ask", "r", "Why?", "--json", "--max-tokens", "2", "--data-dir", parent + "/rel",
                                                              "--chat", QString::number(first.json()["chat"].toInteger())});
        QVERIFY2(second.code == 0, qPrintable(second.err));
        QVERIFY2(second.json()["notices"].toArray().isEmpty(), qPrintable(second.out));
        QCOMPARE(second.json()["prefilled_tokens"].toInteger(), second.json()["question_tokens"].toInteger());
        // And the other way: a new chat from the saved library state.
        const CliResult third = run(tmp_.path() + "/cwd-b", {"ask", "r", "How?", "--json", "--max-tokens", "2", "--data-dir", parent + "/rel"});
        QCOMPARE(third.json()["reused_state"].toBool(), true);
    }

    void stale_temporary_state_files_are_removed_on_start() {
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        // A save in progress is another quire's: a process named so, sleeping until killed.
        SleepingProcess other("quire-desktop");  // the window's engine saves in its own process
        QVERIFY(other.pid() > 0);
        const QString dead = data_ + "/states/library-1-abc.qstate.tmp.2147483000";  // no such process
        const QString live = data_ + QString("/states/library-1-def.qstate.tmp.%1").arg(other.pid());
        put(dead, QByteArray(4096, 'x'));
        put(live, QByteArray(4096, 'y'));
        const CliResult r = quire({"ask", "lib", "Who?", "--json", "--max-tokens", "2"});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(!QFile::exists(dead), "a killed save's temporary file was left");
        QVERIFY2(QFile::exists(live), "a live process's save in progress was removed");
    }

    void the_question_counts_against_the_context_limit() {
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        const CliResult first = quire({"ask", "lib", "Who?", "--json", "--max-tokens", "2"});
        QVERIFY2(first.code == 0, qPrintable(first.err));
        const qint64 limit = first.json()["context_tokens"].toInteger() + 8192 + 16;  // the library fits
        const QString longQuestion = QString("lamp ").repeated(12000);
        const CliResult r = quire({"ask", "lib", longQuestion, "--json", "--max-tokens", "2", "--context-limit", QString::number(limit)});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("the question (") && r.err.contains("does not fit"), qPrintable(r.err));
        // A question that fits still gets an answer, whose length the limit bounds.
        const CliResult ok = quire({"ask", "lib", "Who?", "--json", "--max-tokens", "4", "--context-limit", QString::number(limit)});
        QVERIFY2(ok.code == 0, qPrintable(ok.err));
    }

    // A disk that fills during the state saves, made without privileges: the process may not write
    // files beyond 1 MiB (ulimit -f; SIGXFSZ ignored, so the write fails with EFBIG as a full disk
    // fails with ENOSPC). The library's state is megabytes; the chat's is a delta on it (its own rows
    // and the Lightning states, ~150 KB here) and still fits, as does the database.
    void full_disk_during_state_saves_keeps_the_answer_and_the_chat() {
        QCOMPARE(quire({"add", "lib", demo("the-keeper-of-the-light.txt")}).code, 0);
        const QString script = QString("trap '' XFSZ; ulimit -f 2048; exec '%1' ask lib 'Who kept the light?' --json --max-tokens 4 --data-dir '%2'")
                                   .arg(QString::fromStdString(quire_binary()), data_);
        QProcess sh;
        sh.start("/bin/sh", {"-c", script});
        QVERIFY(sh.waitForFinished(120000));
        const QString err = QString::fromUtf8(sh.readAllStandardError());
        QVERIFY2(sh.exitCode() == 0, qPrintable(err));
        const QJsonObject j = QJsonDocument::fromJson(sh.readAllStandardOutput().trimmed()).object();
        QVERIFY(!j["answer"].toString().isNull());
        const QString notices = QJsonDocument(j["notices"].toArray()).toJson();
        QVERIFY2(notices.contains("could not save the library's state"), qPrintable(notices));
        auto db = quire::app::LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(db.is_ok());
        const qint64 chat = j["chat"].toInteger();
        QCOMPARE(db.value()->messages(chat)->size(), qsizetype(2));  // the chat is kept
        QVERIFY(db.value()->prefixStates(1)->isEmpty());              // nothing recorded that is not on disk
        // No partial files, no library state; the chat's delta was saved.
        QCOMPARE(QDir(data_ + "/states").entryList({"*.tmp.*", "library-*"}, QDir::Files).size(), 0);
        QCOMPARE(QDir(data_ + "/states").entryList({"chat-*.qstate"}, QDir::Files).size(), 1);
        // With room again, a follow-up works (the library read again, the chat's delta on it) and the states are saved.
        const CliResult again = quire({"ask", "lib", "Why?", "--json", "--max-tokens", "2", "--chat", QString::number(chat)});
        QVERIFY2(again.code == 0, qPrintable(again.err));
        QCOMPARE(db.value()->messages(chat)->size(), qsizetype(4));
        QCOMPARE(db.value()->prefixStates(1)->size(), qsizetype(1));
    }
};

QTEST_GUILESS_MAIN(TestHardening)
#include "test_hardening.moc"
