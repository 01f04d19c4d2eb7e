// Quire used as a careless or hostile user would (issue 16): odd files, odd names, output that
// cannot be written, questions too long for the context, stale temporary files, relative folders.
// Each case failed (or hung, bounded here by a time limit) before its fix.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QProcess>
#include <QtTest>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_runner.h"
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
};

QTEST_GUILESS_MAIN(TestHardening)
#include "test_hardening.moc"
