// The command lines of `quire` and `quire-desktop` used carelessly: bad numbers, unknown options,
// --opt=value, --help for every command, and the desktop program's --help/--version without a display.
// Every usage error must exit 2 with one message naming the option and the bad value, before any work.
#include <QDir>
#include <QProcess>
#include <QtTest>

#include "cli_output.h"
#include "cli_runner.h"

using namespace quire::test;

namespace {

struct Run {
    int code = -1;
    QProcess::ExitStatus status = QProcess::CrashExit;
    QString out, err;
};

Run runProgram(const QString& program, const QStringList& args, const QProcessEnvironment& env) {
    QProcess p;
    p.setProcessEnvironment(env);
    p.start(program, args);
    if (!p.waitForFinished(60000)) p.kill();
    return {p.exitCode(), p.exitStatus(), QString::fromUtf8(p.readAllStandardOutput()), QString::fromUtf8(p.readAllStandardError())};
}

}  // namespace

class TestCli : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QProcessEnvironment env_;

    // quire with HOME and XDG_DATA_HOME inside the temporary folder, so that a run that wrongly
    // falls back to the default data folder is seen (and harms nothing).
    Run quire(const QStringList& args) { return runProgram(QString::fromStdString(quire_binary()), args, env_); }
    QString defaultDataDir() const { return tmp_.path() + "/xdg"; }

private slots:
    void initTestCase() {
        env_ = QProcessEnvironment::systemEnvironment();
        env_.insert("HOME", tmp_.path() + "/home");
        env_.insert("XDG_DATA_HOME", defaultDataDir());
        QFile tokens(tmp_.path() + "/tokens.txt");
        QVERIFY(tokens.open(QIODevice::WriteOnly));
        tokens.write("1 2 3\n");
    }

    void bad_values_are_usage_errors_naming_the_option_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("option");
        QTest::addColumn<QString>("value");
        const QString d = tmp_.path() + "/data";
        const QString t = tmp_.path() + "/tokens.txt";
        const QStringList ask{"ask", "lib", "question?", "--data-dir", d};
        QTest::newRow("chat") << ask + QStringList{"--chat", "abc"} << "--chat" << "abc";
        QTest::newRow("chat zero") << ask + QStringList{"--chat", "0"} << "--chat" << "0";
        QTest::newRow("max-tokens") << ask + QStringList{"--max-tokens", "abc"} << "--max-tokens" << "abc";
        QTest::newRow("max-tokens negative") << ask + QStringList{"--max-tokens", "-5"} << "--max-tokens" << "-5";
        QTest::newRow("max-tokens trailing") << ask + QStringList{"--max-tokens", "12abc"} << "--max-tokens" << "12abc";
        QTest::newRow("max-tokens huge") << ask + QStringList{"--max-tokens", "99999999999999999999999"} << "--max-tokens"
                                         << "99999999999999999999999";
        QTest::newRow("temperature") << ask + QStringList{"--temperature", "hot"} << "--temperature" << "hot";
        QTest::newRow("temperature nan") << ask + QStringList{"--temperature", "nan"} << "--temperature" << "nan";
        QTest::newRow("chunk") << ask + QStringList{"--chunk", "x"} << "--chunk" << "x";
        QTest::newRow("state-budget-mb") << ask + QStringList{"--state-budget-mb", "lots"} << "--state-budget-mb" << "lots";
        QTest::newRow("context-limit") << ask + QStringList{"--context-limit", "1e9x"} << "--context-limit" << "1e9x";
        QTest::newRow("threads") << ask + QStringList{"--threads", "100000"} << "--threads" << "100000";
        QTest::newRow("gpu") << ask + QStringList{"--gpu", "-1"} << "--gpu" << "-1";
        QTest::newRow("backend") << ask + QStringList{"--backend", "tpu"} << "--backend" << "tpu";
        QTest::newRow("max-file-size") << QStringList{"add", "lib", t, "--data-dir", d, "--max-file-size", "big"} << "--max-file-size"
                                       << "big";
        QTest::newRow("decode-from") << QStringList{"logits", "--tokens", t, "--out", tmp_.path() + "/o", "--decode-from", "abc"}
                                     << "--decode-from" << "abc";
        QTest::newRow("positions") << QStringList{"logits", "--tokens", t, "--out", tmp_.path() + "/o", "--positions", "abc"}
                                   << "--positions" << "abc";
        QTest::newRow("generate top-k") << QStringList{"generate", "--prompt", "hi", "--top-k", "-3"} << "--top-k" << "-3";
        QTest::newRow("generate repetition-penalty") << QStringList{"generate", "--prompt", "hi", "--repetition-penalty", "0"}
                                                     << "--repetition-penalty" << "0";
    }
    void bad_values_are_usage_errors_naming_the_option() {
        QFETCH(QStringList, args);
        QFETCH(QString, option);
        QFETCH(QString, value);
        const Run r = quire(args);
        QCOMPARE(r.status, QProcess::NormalExit);
        QVERIFY2(r.code == 2, qPrintable(QString("exit %1: %2").arg(r.code).arg(r.err)));
        QVERIFY2(r.err.contains(option) && r.err.contains("'" + value + "'"), qPrintable(r.err));
        QVERIFY(r.out.isEmpty());
        QVERIFY2(!QFile::exists(tmp_.path() + "/data/library.sqlite"), "a usage error must stop before any work");
    }

    void unknown_options_are_refused_without_swallowing_the_next_argument() {
        const QString d = tmp_.path() + "/unknown";
        const Run r = quire({"library", "create", "x", "--bogus", "--data-dir", d});
        QCOMPARE(r.code, 2);
        QVERIFY2(r.err.contains("bogus"), qPrintable(r.err));
        QVERIFY(!QFile::exists(d + "/library.sqlite"));
        QVERIFY2(!QDir(defaultDataDir()).exists(), "the default data folder was used");
        QCOMPARE(quire({"ask", "--max-tokens"}).code, 2);  // an option without its value
        QCOMPARE(quire({"library", "create", "a", "b", "--data-dir", d}).code, 2);  // one argument too many
        QCOMPARE(quire({"add", "x", "--data-dir", d}).code, 2);                     // a missing argument
        QCOMPARE(quire({"frobnicate"}).code, 2);
        QCOMPARE(quire({}).code, 2);
    }

    // An argument that is not UTF-8 is refused (Qt would read its bytes as U+FFFD, and the command
    // would then name another path); an option given twice is refused, unless it repeats by design.
    void non_utf8_arguments_and_repeated_options_are_refused() {
        const QString d = tmp_.path() + "/raw";
        const Run raw = runProgram("bash", {"-c", "exec \"$0\" library create $'bad\\xffname' --data-dir \"$1\"",
                                            QString::fromStdString(quire_binary()), d}, env_);
        QCOMPARE(raw.code, 2);
        QVERIFY2(raw.err.contains("'bad\\xffname' is not valid UTF-8"), qPrintable(raw.err));
        QVERIFY(!QFile::exists(d + "/library.sqlite"));
        const Run twice = quire({"ask", "lib", "q", "--data-dir", d, "--max-tokens", "4", "--max-tokens", "8"});
        QCOMPARE(twice.code, 2);
        QVERIFY2(twice.err.contains("--max-tokens is given more than once ('4', '8')"), qPrintable(twice.err));
        QVERIFY(!QFile::exists(d + "/library.sqlite"));
        // --exclude repeats by design.
        const QString tree = tmp_.path() + "/tree";
        QDir().mkpath(tree);
        for (const char* name : {"a.txt", "b.log", "c.tmp"}) {
            QFile f(tree + "/" + name);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("some text\n");
        }
        QCOMPARE(quire({"library", "create", "x", "--data-dir", d}).code, 0);
        const Run ex = quire({"add", "x", tree, "--data-dir", d, "--exclude", "*.log", "--exclude", "*.tmp"});
        QVERIFY2(ex.code == 0, qPrintable(ex.err));
        QVERIFY2(ex.out.contains("1 file"), qPrintable(ex.out));
    }

    // What reaches a terminal: escape sequences in a file name or chat title are shown, not obeyed;
    // an unknown library command is named before the usage.
    void control_characters_are_shown_on_a_terminal() {
        QCOMPARE(quire::cli::visibleControls(QString("a\x1b[31mred\tok\nnext\x7f\r")), QString("a\\x1b[31mred\tok\nnext\\x7f\\x0d"));
        // C1 controls and bidirectional overrides too; other non-ASCII text stays as it is.
        QCOMPARE(quire::cli::visibleControls(QString::fromUtf8("caf\u00e9 \u009b31m \u202eexe.txt \u2067x\u2069")),
                 QString::fromUtf8("caf\u00e9 \\u009b31m \\u202eexe.txt \\u2067x\\u2069"));
        const Run frob = quire({"library", "frob"});
        QCOMPARE(frob.code, 2);
        QVERIFY2(frob.err.startsWith("quire: no library command 'frob'\n"), qPrintable(frob.err));
    }

    void equals_form_is_accepted() {
        const QString d = tmp_.path() + "/equals";
        const Run r = quire({"library", "create", "x", "--data-dir=" + d, "--system=Be brief."});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY(QFile::exists(d + "/library.sqlite"));
        QVERIFY(quire({"library", "list", "--data-dir=" + d}).out.contains("x\t0 sources"));
    }

    void help_is_on_stdout_with_exit_0_for_every_command_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("usage");
        QTest::newRow("quire") << QStringList{"--help"} << "usage: quire COMMAND";
        for (const char* c : {"library create", "library list", "library show", "add", "remove", "ask", "chats", "export", "config",
                              "model-info", "logits", "generate", "pdf-extract", "self-test"}) {
            const QStringList words = QString(c).split(' ');
            QTest::newRow(c) << words + QStringList{"--help"} << QString("Usage: quire %1 [options]").arg(c);
            QTest::newRow((QString(c) + " -h").toUtf8().constData()) << words + QStringList{"-h"} << QString("Usage: quire %1").arg(c);
        }
        QTest::newRow("library") << QStringList{"library", "--help"} << "quire library create NAME";
    }
    void help_is_on_stdout_with_exit_0_for_every_command() {
        QFETCH(QStringList, args);
        QFETCH(QString, usage);
        const Run r = quire(args);
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains(usage), qPrintable(r.out));
        QVERIFY2(r.err.isEmpty(), qPrintable(r.err));
        QVERIFY2(!QDir(defaultDataDir()).exists(), "--help touched the default data folder");
    }

    void desktop_help_and_version_work_without_a_display() {
        QProcessEnvironment env = env_;
        env.remove("DISPLAY");
        env.remove("WAYLAND_DISPLAY");
        env.insert("QT_QPA_PLATFORM", "xcb");  // what a desktop session uses; it needs a display
        const QString desktop = QUIRE_DESKTOP_BINARY;
        const Run help = runProgram(desktop, {"--help"}, env);
        QCOMPARE(help.status, QProcess::NormalExit);
        QVERIFY2(help.code == 0, qPrintable(help.err));
        QVERIFY2(help.out.contains("Usage: quire-desktop") && help.out.contains("--data-dir"), qPrintable(help.out));
        const Run version = runProgram(desktop, {"--version"}, env);
        QVERIFY2(version.code == 0, qPrintable(version.err));
        QVERIFY2(version.out.contains("quire-desktop 0."), qPrintable(version.out));
        const Run qtOption = runProgram(desktop, {"-platform", "offscreen", "--version"}, env);  // Qt's own options still pass
        QVERIFY2(qtOption.code == 0, qPrintable(qtOption.err));
        const Run bad = runProgram(desktop, {"--bogus"}, env);
        QCOMPARE(bad.code, 2);
        QVERIFY2(bad.err.contains("bogus"), qPrintable(bad.err));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
