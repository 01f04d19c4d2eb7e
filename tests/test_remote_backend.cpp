// The remote backend against a real OpenAI-compatible server on loopback (`quire serve`): answers
// stream, the library context is sent byte-identical from question to question (the server's request
// log shows what it received, and its prefix cache reuses it), and a server that stops mid-answer or
// refuses the key gives a clear error while the chats so far stay as they were.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QtTest>

#include "cli_runner.h"
#include "serve_runner.h"

using namespace quire::test;

class TestRemoteBackend : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString client_, serverData_, log_;
    QString model_ = QString::fromStdString(tiny_model("tiny-a"));
    ServeProcess server_;

    CliResult quire(QStringList args) { return runQuire(args << "--data-dir" << client_); }
    QList<QJsonObject> received() const {
        QFile f(log_);
        if (!f.open(QIODevice::ReadOnly)) return {};
        QList<QJsonObject> out;
        for (const QByteArray& line : f.readAll().split('\n'))
            if (!line.isEmpty()) out << QJsonDocument::fromJson(line).object();
        return out;
    }
    QString exportChat(qint64 chat) { return quire({"export", "book", QString::number(chat), "--markdown"}).out; }

private slots:
    void initTestCase() {
        client_ = tmp_.path() + "/client";
        serverData_ = tmp_.path() + "/server";
        log_ = tmp_.path() + "/requests.jsonl";
        QVERIFY(server_.start({"--data-dir", serverData_, "--model", model_, "--request-log", log_}));
        QVERIFY(server_.waitReady());
        QCOMPARE(quire({"library", "create", "book"}).code, 0);
        QCOMPARE(quire({"add", "book", QString(QUIRE_SOURCE_DIR) + "/resources/demo/the-keeper-of-the-light.txt"}).code, 0);
    }

    void configuration_is_checked() {
        for (const QString& bad : {QString("ftp://example/v1"), QString("localhost:8080"), QString("http://")}) {
            const CliResult r = quire({"config", "backend", bad, "--model", "m"});
            QVERIFY2(r.code == 2, qPrintable(bad + ": " + r.err));
            QVERIFY(r.err.contains("URL"));
        }
        const CliResult down = quire({"config", "backend", "http://127.0.0.1:1/v1"});
        QCOMPARE(down.code, 1);
        QVERIFY2(down.err.contains("cannot connect"), qPrintable(down.err));
        const CliResult noKey = quire({"config", "backend", server_.url("/v1"), "--api-key-file", tmp_.path() + "/missing"});
        QCOMPARE(noKey.code, 1);
        // Without --model the server's first model is taken.
        const CliResult ok = quire({"config", "backend", server_.url("/v1")});
        QCOMPARE(ok.code, 0);
        QVERIFY2(ok.out.contains("model tiny-a"), qPrintable(ok.out));
    }

    void answers_stream_and_the_context_prefix_is_identical() {
        // Not --json: the answer is printed as it streams.
        const CliResult first = quire({"ask", "book", "Who kept the light?", "--max-tokens", "8"});
        QVERIFY2(first.code == 0, qPrintable(first.err));
        QVERIFY(!first.out.trimmed().isEmpty());
        QVERIFY(first.err.contains("answered by tiny-a"));
        const CliResult second = quire({"ask", "book", "How many steps were there?", "--max-tokens", "8", "--json"});
        QCOMPARE(second.code, 0);
        const CliResult follow = quire({"ask", "book", "And the ship?", "--chat", "1", "--max-tokens", "8", "--json"});
        QCOMPARE(follow.code, 0);
        QCOMPARE(follow.json()["chat"].toInteger(), 1);

        const QList<QJsonObject> got = received();
        QCOMPARE(got.size(), 3);
        QString context;
        for (const QJsonObject& r : got) {
            QCOMPARE(r["stream"].toBool(), true);
            const QJsonObject system = r["messages"].toArray()[0].toObject();
            QCOMPARE(system["role"].toString(), QString("system"));
            if (context.isEmpty()) context = system["content"].toString();
            QCOMPARE(system["content"].toString(), context);  // byte for byte the same every time
        }
        QVERIFY(context.contains("keeper"));
        QCOMPARE(got[2]["messages"].toArray().size(), 4);  // context, the first turn, the follow-up
        QCOMPARE(got[2]["messages"].toArray()[1].toObject()["content"].toString(), QString("Who kept the light?"));
        // The server's prefix cache reused the context for the second question.
        const qint64 prompt = second.json()["prompt_tokens"].toInteger();
        const qint64 cached = second.json()["cached_tokens"].toInteger();
        QVERIFY2(cached > 1000 && cached < prompt, qPrintable(QString("%1 of %2").arg(cached).arg(prompt)));
        QVERIFY(exportChat(1).contains("## Question\n\nAnd the ship?"));
    }

    void server_stopped_mid_answer_keeps_the_chats() {
        const QString before = exportChat(1);
        const QString chatsBefore = quire({"chats", "book"}).out;
        QProcess ask;
        ask.start(QString::fromStdString(quire_binary()), {"ask", "book", "Tell me everything.", "--max-tokens", "100000", "--temperature", "1",
                                                           "--seed", "5", "--data-dir", client_});
        QByteArray streamed;
        QElapsedTimer t;
        t.start();
        while (streamed.size() < 4) {
            QVERIFY2(t.elapsed() < 60000 && ask.state() != QProcess::NotRunning, ask.readAllStandardError().constData());
            ask.waitForReadyRead(100);
            streamed += ask.readAllStandardOutput();
        }
        server_.process().kill();  // the server dies in the middle of the answer
        QVERIFY(ask.waitForFinished(60000));
        QCOMPARE(ask.exitCode(), 1);
        const QString err = QString::fromUtf8(ask.readAllStandardError());
        QVERIFY2(err.contains("stopped in the middle of the answer") || err.contains("without finishing"), qPrintable(err));
        QVERIFY(err.contains("nothing was saved"));
        QCOMPARE(quire({"chats", "book"}).out, chatsBefore);
        QCOMPARE(exportChat(1), before);
        // With the server gone, the next question says so at once.
        const CliResult down = quire({"ask", "book", "Anyone there?", "--chat", "1"});
        QCOMPARE(down.code, 1);
        QVERIFY2(down.err.contains("cannot connect to the model server"), qPrintable(down.err));
        QVERIFY(down.err.contains("chat 1 is unchanged"));
        QCOMPARE(exportChat(1), before);
    }

    void refused_api_key_is_explained() {
        put(tmp_.path() + "/key", "right-key\n");
        put(tmp_.path() + "/wrong", "wrong-key\n");
        ServeProcess keyed;
        QVERIFY(keyed.start({"--data-dir", serverData_, "--model", model_, "--api-key-file", tmp_.path() + "/key"}));
        QVERIFY(keyed.waitReady());
        const QString before = exportChat(1);
        QCOMPARE(quire({"config", "backend", keyed.url("/v1"), "--model", "tiny-a"}).code, 0);
        const CliResult noKey = quire({"ask", "book", "Hello?", "--chat", "1"});
        QCOMPARE(noKey.code, 1);
        QVERIFY2(noKey.err.contains("401") && noKey.err.contains("--api-key-file"), qPrintable(noKey.err));
        QCOMPARE(quire({"config", "backend", keyed.url("/v1"), "--model", "tiny-a", "--api-key-file", tmp_.path() + "/wrong"}).code, 0);
        const CliResult wrong = quire({"ask", "book", "Hello?", "--chat", "1"});
        QCOMPARE(wrong.code, 1);
        QVERIFY2(wrong.err.contains("401") && wrong.err.contains("refused"), qPrintable(wrong.err));
        QCOMPARE(exportChat(1), before);
        QCOMPARE(quire({"config", "backend", keyed.url("/v1"), "--api-key-file", tmp_.path() + "/key"}).code, 0);
        const CliResult right = quire({"ask", "book", "Hello?", "--chat", "1", "--max-tokens", "4", "--json"});
        QVERIFY2(right.code == 0, qPrintable(right.err));
        QVERIFY(exportChat(1).contains("## Question\n\nHello?"));
        // Back to the local engine.
        QCOMPARE(quire({"config", "backend", "local"}).code, 0);
        const CliResult local = quire({"ask", "book", "Local?", "--max-tokens", "2", "--json", "--model", model_});
        QVERIFY2(local.code == 0, qPrintable(local.err));
        QVERIFY(local.json().contains("context_tokens"));
    }
};

QTEST_GUILESS_MAIN(TestRemoteBackend)
#include "test_remote_backend.moc"
