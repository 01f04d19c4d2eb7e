// Killing quire (SIGKILL) at random points during ingestion and during reading / state saves must
// always leave a library that opens, passes PRAGMA integrity_check and still holds every source
// that was reported as added.
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QRandomGenerator>
#include <QtTest>

#include <algorithm>

#include "cli_runner.h"
#include "library/library_db.h"

using namespace quire::test;

class TestLibraryKill : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

    void checkLibrary(const QString& data, const QStringList& reported) {
        auto db = quire::app::LibraryDb::open(data + "/library.sqlite");
        QVERIFY2(db.is_ok(), db.status().message().c_str());
        QVERIFY2(db.value()->integrityCheck().is_ok(), db.value()->integrityCheck().message().c_str());
        auto lib = db.value()->library("k");
        QVERIFY(lib.is_ok() && lib.value());
        auto sources = db.value()->sources(lib.value()->id);
        QVERIFY(sources.is_ok());
        QStringList present;
        for (const auto& s : sources.value()) {
            present << s.path;
            auto text = db.value()->sourceText(s.id);
            QVERIFY(text.is_ok());
            if (s.status == "ready") QVERIFY(!text.value().isEmpty());  // a source never lands without its text
        }
        for (const QString& path : reported) QVERIFY2(present.contains(path), qPrintable(path + " was reported as added but is missing"));
        // A chat is recorded with its question and answer at once: a kill never leaves one half-written.
        auto chats = db.value()->chats(lib.value()->id);
        QVERIFY(chats.is_ok());
        for (const auto& c : chats.value()) {
            const auto messages = db.value()->messages(c.id);
            QVERIFY2(!messages->isEmpty() && messages->size() % 2 == 0, qPrintable(QString("chat %1 has %2 messages").arg(c.id).arg(messages->size())));
        }
    }

    // Starts quire, kills it after a random delay up to maxMs, returns what it printed before dying.
    QString runAndKill(const QStringList& args, int maxMs) {
        QProcess p;
        p.start(QString::fromStdString(quire_binary()), args);
        p.waitForStarted();
        QThread::msleep(static_cast<unsigned long>(QRandomGenerator::global()->bounded(maxMs)));
        p.kill();
        p.waitForFinished();
        return QString::fromUtf8(p.readAllStandardOutput());
    }

private slots:
    void kill_during_ingestion() {
        const QString data = tmp_.path() + "/ingest";
        QCOMPARE(runQuire({"library", "create", "k", "--data-dir", data}).code, 0);
        // One round's files ("r<round>_<i>.txt", 12 of them).
        auto batch = [&](const QString& round) {
            QStringList files;
            for (int i = 0; i < 12; ++i) {
                const QString f = tmp_.path() + QString("/src/r%1_%2.txt").arg(round).arg(i);
                QDir().mkpath(tmp_.path() + "/src");
                QFile file(f);
                file.open(QIODevice::WriteOnly);
                file.write(QByteArray(20000 + 1000 * i, 'a' + static_cast<char>(i)) + "\n");
                files << f;
            }
            return files;
        };
        // The kills spread over a whole add as long as this machine takes for one (a loaded CI
        // machine took longer than a fixed 400 ms window, and no run reported anything).
        const QString timing = tmp_.path() + "/timing";
        QCOMPARE(runQuire({"library", "create", "k", "--data-dir", timing}).code, 0);
        QElapsedTimer clock;
        clock.start();
        QCOMPARE(runQuire(QStringList{"add", "k"} + batch("timing") + QStringList{"--data-dir", timing}).code, 0);
        const int window = static_cast<int>(std::max<qint64>(400, clock.elapsed() * 3 / 2));
        QStringList reported;
        for (int round = 0; round < 20; ++round) {
            const QStringList args = QStringList{"add", "k"} + batch(QString::number(round)) + QStringList{"--data-dir", data};
            const QString printed = runAndKill(args, window);
            for (const QString& line : printed.split('\n'))
                if (line.startsWith("added: ")) reported << line.mid(7).section(" (", 0, 0);
            checkLibrary(data, reported);
        }
        QVERIFY2(!reported.isEmpty(), "no run got far enough to add anything: the kill window is too short");
    }

    void kill_during_reading_and_state_saves() {
        const QString data = tmp_.path() + "/read";
        const QString demo = QString(QUIRE_SOURCE_DIR) + "/resources/demo";
        QCOMPARE(runQuire({"library", "create", "k", "--data-dir", data}).code, 0);
        QCOMPARE(runQuire({"add", "k", demo + "/the-keeper-of-the-light.txt", "--data-dir", data}).code, 0);
        QStringList reported{demo + "/the-keeper-of-the-light.txt"};
        for (int round = 0; round < 20; ++round) {
            if (round % 2) {  // a new source, so that the next ask reads it and saves a new prefix state
                const QString f = tmp_.path() + QString("/extra%1.txt").arg(round);
                QFile file(f);
                file.open(QIODevice::WriteOnly);
                file.write(QString("Extra note %1: the keeper counted %2 ships.\n").arg(round).arg(round * 37).repeated(40).toUtf8());
                file.close();
                QCOMPARE(runQuire({"add", "k", f, "--data-dir", data}).code, 0);
                reported << f;
            }
            runAndKill({"ask", "k", "What happened?", "--max-tokens", "4", "--json", "--data-dir", data}, 900);
            checkLibrary(data, reported);
            // Whatever was left behind, the next question works (from a saved state or by reading again).
            const CliResult after = runQuire({"ask", "k", "And then?", "--max-tokens", "2", "--json", "--data-dir", data});
            QVERIFY2(after.code == 0, qPrintable(after.err));
            QVERIFY(after.json().contains("answer"));
        }
    }
};

QTEST_GUILESS_MAIN(TestLibraryKill)
#include "test_library_kill.moc"
