// `quire serve` on the tiny model, driven over real HTTP by curl and by the official `openai` client
// for Node: models, chat with and without streaming, a library answering from its saved state,
// stop sequences, seeds, every error status, disconnects, concurrent clients, bad bodies.
#include <QDir>
#include <QJsonArray>
#include <QTcpSocket>
#include <QtTest>

#include "cli_runner.h"
#include "serve_runner.h"

using namespace quire::test;

namespace {

QByteArray chatBody(const QString& model, const QString& question, QJsonObject extra = {}) {
    QJsonObject o = extra;
    o["model"] = model;
    o["messages"] = QJsonArray{QJsonObject{{"role", "user"}, {"content", question}}};
    if (!o.contains("max_tokens")) o["max_tokens"] = 12;
    if (!o.contains("temperature")) o["temperature"] = 0;
    return QJsonDocument(o).toJson(QJsonDocument::Compact);
}

struct Stream {
    QList<QJsonObject> chunks;
    bool done = false;
    bool wellFormed = true;
    QString content;
    QString finish;
};

// Parses a server-sent event stream as the OpenAI API writes it.
Stream parseStream(const QByteArray& body) {
    Stream s;
    const QList<QByteArray> events = body.split('\n');
    for (qsizetype i = 0; i < events.size(); ++i) {
        const QByteArray line = events[i];
        if (line.isEmpty()) continue;
        if (!line.startsWith("data: ") || i + 1 >= events.size() || !events[i + 1].isEmpty() || s.done) {
            s.wellFormed = false;
            continue;
        }
        const QByteArray data = line.mid(6);
        if (data == "[DONE]") {
            s.done = true;
            continue;
        }
        const QJsonObject chunk = QJsonDocument::fromJson(data).object();
        if (chunk["object"].toString() != "chat.completion.chunk") s.wellFormed = false;
        const QJsonArray choices = chunk["choices"].toArray();
        if (!choices.isEmpty()) {
            s.content += choices[0].toObject()["delta"].toObject()["content"].toString();
            if (!choices[0].toObject()["finish_reason"].isNull()) s.finish = choices[0].toObject()["finish_reason"].toString();
        }
        s.chunks << chunk;
    }
    return s;
}

QString answerOf(const HttpResult& r) { return r.json()["choices"].toArray()[0].toObject()["message"].toObject()["content"].toString(); }

}  // namespace

class TestServe : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString data_;
    QString model_ = QString::fromStdString(tiny_model("tiny-a"));
    ServeProcess server_;  // the shared server: default options
    qint64 contextTokens_ = 0;

    QStringList common() const { return {"--data-dir", data_, "--model", model_, "--chunk", "512"}; }

private slots:
    void initTestCase() {
        data_ = tmp_.path() + "/data";
        QDir().mkpath(data_);
        auto quire = [&](QStringList a) { return runQuire(a << "--data-dir" << data_); };
        QCOMPARE(quire({"library", "create", "book"}).code, 0);
        QCOMPARE(quire({"add", "book", QString(QUIRE_SOURCE_DIR) + "/resources/demo/the-keeper-of-the-light.txt"}).code, 0);
        // Reading the library once saves its prefix state; the server must start from it.
        const CliResult first = quire({"ask", "book", "Who kept the light?", "--json", "--max-tokens", "2", "--chunk", "512", "--model", model_});
        QCOMPARE(first.code, 0);
        contextTokens_ = first.json()["context_tokens"].toInteger();
        QVERIFY(contextTokens_ > 1000);
        QVERIFY(server_.start(common()));
        QVERIFY(server_.waitReady());
    }

    void library_model_answers_from_the_saved_state() {
        // The first request of a fresh server: the library's saved state is loaded, not read again.
        const QJsonObject before = server_.health()["engine"].toObject();
        QCOMPARE(before["prefilled_tokens"].toInteger(), 0);
        const HttpResult r = server_.post("/v1/chat/completions", chatBody("library/book", "How many steps were there?"));
        QCOMPARE(r.status, 200);
        const QJsonObject usage = r.json()["usage"].toObject();
        const qint64 prompt = usage["prompt_tokens"].toInteger();
        const qint64 cached = usage["prompt_tokens_details"].toObject()["cached_tokens"].toInteger();
        QCOMPARE(cached, contextTokens_);
        QCOMPARE(r.json()["quire"].toObject()["reused_library_state"].toBool(), true);
        // Only the question was computed: the engine's own counters say so.
        const QJsonObject after = server_.health()["engine"].toObject();
        QCOMPARE(after["prefilled_tokens"].toInteger() - before["prefilled_tokens"].toInteger(), prompt - cached);
        QVERIFY2(prompt - cached < 100, qPrintable(QString::number(prompt - cached)));
        QVERIFY(!answerOf(r).isEmpty());
        // A follow-up that repeats the conversation computes only what is new after the first prompt.
        QJsonObject follow;
        follow["model"] = "library/book";
        follow["max_tokens"] = 4;
        follow["temperature"] = 0;
        follow["messages"] = QJsonArray{QJsonObject{{"role", "user"}, {"content", "How many steps were there?"}},
                                        QJsonObject{{"role", "assistant"}, {"content", answerOf(r)}},
                                        QJsonObject{{"role", "user"}, {"content", "And the ship?"}}};
        const HttpResult f = server_.post("/v1/chat/completions", QJsonDocument(follow).toJson());
        QCOMPARE(f.status, 200);
        QVERIFY(f.json()["usage"].toObject()["prompt_tokens_details"].toObject()["cached_tokens"].toInteger() >= prompt - 1);
    }

    void models_are_listed() {
        const HttpResult r = server_.get("/v1/models");
        QCOMPARE(r.status, 200);
        QCOMPARE(r.json()["object"].toString(), QString("list"));
        QStringList ids;
        for (const QJsonValue& m : r.json()["data"].toArray()) ids << m.toObject()["id"].toString();
        QCOMPARE(ids, (QStringList{"tiny-a", "library/book"}));
    }

    void chat_with_and_without_streaming() {
        const HttpResult plain = server_.post("/v1/chat/completions", chatBody("tiny-a", "Say something."));
        QCOMPARE(plain.status, 200);
        QCOMPARE(plain.json()["object"].toString(), QString("chat.completion"));
        QVERIFY(plain.json()["id"].toString().startsWith("chatcmpl-"));
        const QJsonObject usage = plain.json()["usage"].toObject();
        QVERIFY(usage["completion_tokens"].toInteger() >= 1 && usage["completion_tokens"].toInteger() <= 12);
        QCOMPARE(usage["total_tokens"].toInteger(), usage["prompt_tokens"].toInteger() + usage["completion_tokens"].toInteger());
        const QString answer = answerOf(plain);
        QVERIFY(!answer.isEmpty());

        QJsonObject streamed;
        streamed["stream"] = true;
        streamed["stream_options"] = QJsonObject{{"include_usage", true}};
        const HttpResult s = server_.post("/v1/chat/completions", chatBody("tiny-a", "Say something.", streamed), {"-N", "-i"});
        QCOMPARE(s.status, 200);
        const qsizetype headerEnd = s.body.indexOf("\r\n\r\n");
        QVERIFY(s.body.left(headerEnd).toLower().contains("content-type: text/event-stream"));
        const Stream st = parseStream(s.body.mid(headerEnd + 4).replace("\r\n", "\n"));
        QVERIFY(st.wellFormed);
        QVERIFY(st.done);
        QCOMPARE(st.content, answer);  // greedy: the same text streamed and not
        QCOMPARE(st.chunks.first()["choices"].toArray()[0].toObject()["delta"].toObject()["role"].toString(), QString("assistant"));
        QCOMPARE(st.finish, plain.json()["choices"].toArray()[0].toObject()["finish_reason"].toString());
        QCOMPARE(st.chunks.last()["usage"].toObject()["completion_tokens"].toInteger(), usage["completion_tokens"].toInteger());
        const QString id = st.chunks.first()["id"].toString();
        for (const QJsonObject& c : st.chunks) QCOMPARE(c["id"].toString(), id);
    }

    void stop_sequences_end_the_answer_before_them() {
        const QString full = answerOf(server_.post("/v1/chat/completions", chatBody("tiny-a", "Tell a story.", {{"max_tokens", 24}})));
        QVERIFY2(full.size() >= 8, qPrintable(full));
        const QString stop = full.mid(full.size() / 2, 2);
        const QString expected = full.left(full.indexOf(stop));
        for (bool stream : {false, true}) {
            QJsonObject extra{{"max_tokens", 24}, {"stop", QJsonArray{"never-there", stop}}, {"stream", stream}};
            const HttpResult r = server_.post("/v1/chat/completions", chatBody("tiny-a", "Tell a story.", extra));
            QCOMPARE(r.status, 200);
            if (stream) {
                const Stream st = parseStream(r.body);
                QCOMPARE(st.content, expected);
                QCOMPARE(st.finish, QString("stop"));
            } else {
                QCOMPARE(answerOf(r), expected);
                QCOMPARE(r.json()["choices"].toArray()[0].toObject()["finish_reason"].toString(), QString("stop"));
            }
        }
    }

    void same_seed_same_answer() {
        auto sampled = [&](int seed) {
            return answerOf(server_.post("/v1/chat/completions",
                                         chatBody("tiny-a", "Tell a story.", {{"temperature", 1.0}, {"seed", seed}, {"max_tokens", 16}})));
        };
        const QString a = sampled(42);
        QVERIFY(!a.isEmpty());
        QCOMPARE(sampled(42), a);
        QCOMPARE(sampled(42), a);
        QStringList others;
        for (int seed : {1, 2, 3}) others << sampled(seed);
        QVERIFY2(others.count(a) < 3, "three other seeds all gave the answer of seed 42: the seed is not used");
    }

    void request_errors_have_the_openai_shape() {
        struct Case {
            QByteArray body;
            int status;
            QString needle;
        };
        const QList<Case> cases = {
            {"{not json", 400, "not valid JSON"},
            {"[1,2]", 400, "JSON object"},
            {R"({"messages":[{"role":"user","content":"hi"}]})", 400, "model"},
            {R"({"model":"tiny-a","messages":[]})", 400, "messages"},
            {R"({"model":"tiny-a","messages":[{"role":"tool","content":"x"}]})", 400, "role"},
            {chatBody("tiny-a", "hi", {{"temperature", 5}}), 400, "temperature"},
            {chatBody("tiny-a", "hi", {{"max_tokens", 0}}), 400, "max_tokens"},
            {chatBody("tiny-a", "hi", {{"max_tokens", "ten"}}), 400, "max_tokens"},
            {chatBody("tiny-a", "hi", {{"top_p", 0}}), 400, "top_p"},
            {chatBody("tiny-a", "hi", {{"stop", QJsonArray{"a", "b", "c", "d", "e"}}}), 400, "stop"},
            {chatBody("tiny-a", "hi", {{"stop", QString(2000, 'x')}}), 400, "1024 bytes"},
            {chatBody("tiny-a", "hi", {{"stop", ""}}), 400, "empty stop"},
            {chatBody("tiny-a", "hi", {{"seed", 1.5}}), 400, "seed"},
            {chatBody("tiny-a", "hi", {{"stream", "yes"}}), 400, "stream"},
            {chatBody("tiny-a", "hi", {{"n", 2}}), 400, "n"},
            {chatBody("no-such-model", "hi"), 404, "no-such-model"},
            {chatBody("library/nothing", "hi"), 404, "nothing"},
            {chatBody("tiny-a", "hi", {{"max_tokens", 1 << 20}}), 413, "1048576"},
            {chatBody("library/book", "hi", {{"max_tokens", 1 << 20}}), 413, "context of 1048576 tokens"},
        };
        for (const Case& c : cases) {
            const HttpResult r = server_.post("/v1/chat/completions", c.body);
            QVERIFY2(r.status == c.status, qPrintable(QString("%1 -> %2 %3").arg(QString::fromUtf8(c.body)).arg(r.status).arg(QString::fromUtf8(r.body))));
            QVERIFY2(r.errorMessage().contains(c.needle), qPrintable(r.errorMessage()));
            QVERIFY(!r.json()["error"].toObject()["type"].toString().isEmpty());
        }
        QCOMPARE(server_.get("/v1/nothing").status, 404);
        QVERIFY(!server_.get("/v1/nothing").errorMessage().isEmpty());
        QCOMPARE(server_.get("/v1/models").status, 200);  // still serving
    }

    void bad_and_oversize_bodies_are_refused_and_the_server_keeps_serving() {
        ServeProcess small;
        QVERIFY(small.start(common() << "--max-body-bytes" << "4096"));
        QVERIFY(small.waitReady());
        const HttpResult big = small.post("/v1/chat/completions", chatBody("tiny-a", QString(20000, 'x')));
        QCOMPARE(big.status, 413);
        QVERIFY2(big.errorMessage().contains("4096"), big.body.constData());
        QByteArray garbage(3000, '\0');
        for (qsizetype i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 131) % 256);
        QCOMPARE(small.post("/v1/chat/completions", garbage).status, 400);
        QCOMPARE(small.post("/v1/chat/completions", QByteArray("{\"model\":\"tiny-a\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}")).status, 400);
        const HttpResult ok = small.post("/v1/chat/completions", chatBody("tiny-a", "Still there?"));
        QCOMPARE(ok.status, 200);
    }

    void api_key_is_required_when_set() {
        const QString keyFile = tmp_.path() + "/key";
        put(keyFile, "s3cret-key\n");
        ServeProcess keyed;
        QVERIFY(keyed.start(common() << "--api-key-file" << keyFile));
        QVERIFY(keyed.waitReady());
        QCOMPARE(keyed.get("/v1/models").status, 401);
        QCOMPARE(keyed.get("/v1/models", {"-H", "Authorization: Bearer wrong"}).status, 401);
        QCOMPARE(keyed.post("/v1/chat/completions", chatBody("tiny-a", "hi")).status, 401);
        QCOMPARE(keyed.get("/v1/models", {"-H", "Authorization: Bearer s3cret-key"}).status, 200);
        QCOMPARE(keyed.post("/v1/chat/completions", chatBody("tiny-a", "hi"), {"-H", "Authorization: Bearer s3cret-key"}).status, 200);
        // Without a key the server refuses to listen beyond loopback.
        const CliResult open = runQuire({"serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", data_});
        QCOMPARE(open.code, 2);
        QVERIFY(open.err.contains("api-key-file"));
    }

    void bad_options_are_refused() {
        for (const QStringList& bad : {QStringList{"--port", "70000"}, QStringList{"--port", "x"}, QStringList{"--queue", "0"},
                                       QStringList{"--no-such-option"}, QStringList{"--backend", "tpu"}, QStringList{"extra"}}) {
            const CliResult r = runQuire(QStringList{"serve", "--data-dir", data_} + bad, 30000);
            QVERIFY2(r.code == 2, qPrintable(bad.join(' ') + ": " + r.err));
            QVERIFY(!r.err.isEmpty());
        }
    }

    void loading_model_answers_503() {
        ServeProcess slow;
        QVERIFY(slow.start(common() << "--load-delay-ms" << "4000"));
        const HttpResult health = slow.get("/health");
        QCOMPARE(health.status, 503);
        QCOMPARE(health.json()["status"].toString(), QString("loading"));
        const HttpResult chat = slow.post("/v1/chat/completions", chatBody("tiny-a", "hi"));
        QCOMPARE(chat.status, 503);
        QVERIFY(chat.errorMessage().contains("loading"));
        QCOMPARE(slow.get("/v1/models").status, 503);
        QVERIFY(slow.waitReady());
        QCOMPARE(slow.post("/v1/chat/completions", chatBody("tiny-a", "hi")).status, 200);
    }

    void full_queue_429_and_disconnect_cancels() {
        ServeProcess one;
        QVERIFY(one.start(common() << "--queue" << "1"));
        QVERIFY(one.waitReady());
        // A: a long streamed answer that keeps the engine busy.
        QProcess a;
        a.start("curl", {"-sS", "-N", "-H", "Content-Type: application/json", "-d",
                         QString::fromUtf8(chatBody("tiny-a", "Tell a long story.", {{"max_tokens", 1000000 - 2000}, {"stream", true}, {"ignore_eos", true}})),
                         one.url("/v1/chat/completions")});
        QByteArray aOut;
        QElapsedTimer t;
        t.start();
        while (!aOut.contains("\"content\":\"") || aOut.count("data: ") < 4) {
            QVERIFY2(t.elapsed() < 60000, aOut.constData());
            a.waitForReadyRead(200);
            aOut += a.readAllStandardOutput();
        }
        // B waits in the queue; C finds it full.
        QProcess b;
        b.start("curl", {"-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "-d",
                         QString::fromUtf8(chatBody("tiny-a", "Short one.")), one.url("/v1/chat/completions")});
        t.restart();
        while (one.health()["queue"].toObject()["waiting"].toInt() != 1) {
            QVERIFY(t.elapsed() < 30000);
            QThread::msleep(20);
        }
        const HttpResult c = one.post("/v1/chat/completions", chatBody("tiny-a", "Me too."));
        QCOMPARE(c.status, 429);
        QVERIFY(c.errorMessage().contains("busy"));
        // A's client goes away: its generation stops, B is answered.
        const qint64 decodedAtKill = one.health()["engine"].toObject()["decoded_tokens"].toInteger();
        a.kill();
        a.waitForFinished(5000);
        QVERIFY(b.waitForFinished(60000));
        const QByteArray bOut = b.readAllStandardOutput();
        QVERIFY2(bOut.endsWith("\n200"), bOut.constData());
        const qint64 bTokens = QJsonDocument::fromJson(bOut.left(bOut.lastIndexOf('\n'))).object()["usage"].toObject()["completion_tokens"].toInteger();
        t.restart();
        while (one.health()["queue"].toObject()["running"].toInt() != 0) {
            QVERIFY(t.elapsed() < 30000);
            QThread::msleep(20);
        }
        const qint64 decodedAfter = one.health()["engine"].toObject()["decoded_tokens"].toInteger();
        // What A decoded after its client left: the steps until the next write failed, no more.
        const qint64 afterKill = decodedAfter - decodedAtKill - bTokens;
        qInfo("tokens decoded for the departed client after it left: %lld", static_cast<long long>(afterKill));
        QVERIFY2(afterKill < 200, qPrintable(QString::number(afterKill)));
    }

    // A non-streamed answer writes nothing until it is complete, so the server watches the
    // connection: a client that leaves stops its generation, also when bytes it sent are still
    // unread (here a stray CRLF after the body, as some old clients send); and one that leaves
    // while it waits in the queue gives its place to the next client at once, and never runs.
    void unstreamed_and_waiting_clients_that_leave_are_cancelled() {
        ServeProcess one;
        QVERIFY(one.start(common() << "--queue" << "1"));
        QVERIFY(one.waitReady());
        const QByteArray longBody = chatBody("tiny-a", "Tell a long story.", {{"max_tokens", 1000000 - 2000}, {"ignore_eos", true}});
        auto queue = [&] { return one.health()["queue"].toObject(); };
        auto decoded = [&] { return one.health()["engine"].toObject()["decoded_tokens"].toInteger(); };
        auto waitFor = [&](const std::function<bool()>& done, int ms) {
            QElapsedTimer t;
            t.start();
            while (!done()) {
                if (t.elapsed() > ms) return false;
                QThread::msleep(20);
            }
            return true;
        };
        // A: a raw connection; once its job runs it sends more (a stray CRLF, which the server
        // does not read while it answers), so a peek would see data, not the end of the stream.
        QTcpSocket a;
        a.connectToHost("127.0.0.1", static_cast<quint16>(one.port()));
        QVERIFY(a.waitForConnected(5000));
        a.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
                QByteArray::number(longBody.size()) + "\r\n\r\n" + longBody);
        QVERIFY(a.waitForBytesWritten(5000));
        QVERIFY(waitFor([&] { return queue()["running"].toInt() == 1 && decoded() > 0; }, 30000));
        a.write("\r\n");
        QVERIFY(a.waitForBytesWritten(5000));
        // B waits in the queue (capacity 1) and gives up after 2 s: its place is free again while A runs.
        QProcess b;
        b.start("curl", {"-sS", "--max-time", "2", "-H", "Content-Type: application/json", "-d", QString::fromUtf8(longBody),
                         one.url("/v1/chat/completions")});
        QVERIFY(waitFor([&] { return queue()["waiting"].toInt() == 1; }, 30000));
        QVERIFY(b.waitForFinished(30000));
        QCOMPARE(b.exitCode(), 28);  // curl: operation timed out
        QVERIFY2(waitFor([&] { return queue()["waiting"].toInt() == 0; }, 3000), qPrintable(QJsonDocument(queue()).toJson()));
        QCOMPARE(queue()["running"].toInt(), 1);
        // C takes that place (no 429) and is answered once A's client has gone.
        QProcess c;
        c.start("curl", {"-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "-d",
                         QString::fromUtf8(chatBody("tiny-a", "Short one.", {{"max_tokens", 8}})), one.url("/v1/chat/completions")});
        QVERIFY(waitFor([&] { return queue()["waiting"].toInt() == 1; }, 30000));
        const qint64 beforeLeave = decoded();
        a.abort();
        QVERIFY(c.waitForFinished(30000));
        const QByteArray cOut = c.readAllStandardOutput();
        QVERIFY2(cOut.endsWith("\n200"), cOut.constData());
        QVERIFY(waitFor([&] { return queue()["running"].toInt() == 0 && queue()["waiting"].toInt() == 0; }, 10000));
        const qint64 settled = decoded();
        QThread::msleep(1000);
        QCOMPARE(decoded(), settled);
        // What A decoded after its client left, and C's 8: a few polls' worth, not the 998,000 asked for.
        qInfo("tokens decoded after A's client left (C's included): %lld", static_cast<long long>(settled - beforeLeave));
        QVERIFY2(settled - beforeLeave < 2000, qPrintable(QString::number(settled - beforeLeave)));
    }

    void eight_concurrent_clients_are_answered_in_turn() {
        std::vector<std::unique_ptr<QProcess>> clients;
        for (int i = 0; i < 8; ++i) {
            auto p = std::make_unique<QProcess>();
            p->start("curl", {"-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "-d",
                              QString::fromUtf8(chatBody(i % 2 ? "tiny-a" : "library/book", QString("Question %1?").arg(i))),
                              server_.url("/v1/chat/completions")});
            clients.push_back(std::move(p));
        }
        const qint64 before = server_.health()["engine"].toObject()["decoded_tokens"].toInteger();
        qint64 completion = 0;
        for (auto& p : clients) {
            QVERIFY(p->waitForFinished(120000));
            const QByteArray out = p->readAllStandardOutput();
            QVERIFY2(out.endsWith("\n200"), out.constData());
            const QJsonObject j = QJsonDocument::fromJson(out.left(out.lastIndexOf('\n'))).object();
            QVERIFY(!j["choices"].toArray()[0].toObject()["message"].toObject()["content"].toString().isEmpty());
            completion += j["usage"].toObject()["completion_tokens"].toInteger();
        }
        QVERIFY(server_.health()["engine"].toObject()["decoded_tokens"].toInteger() - before <= completion);
        QCOMPARE(server_.health()["queue"].toObject()["waiting"].toInt(), 0);
    }

    void official_openai_node_client() {
        const QString nodeDir = QString(QUIRE_SOURCE_DIR) + "/tests/node";
        QProcess install;
        install.start("bash", {nodeDir + "/install.sh"});
        QVERIFY(install.waitForFinished(300000));
        QVERIFY2(install.exitCode() == 0, install.readAllStandardError().constData());
        QProcess node;
        node.start("node", {nodeDir + "/openai_client.mjs", server_.url("/v1"), "tiny-a", "library/book"});
        QVERIFY(node.waitForFinished(300000));
        QVERIFY2(node.exitCode() == 0, node.readAllStandardError().constData());
        const QByteArray out = node.readAllStandardOutput().trimmed();
        const QJsonObject j = QJsonDocument::fromJson(out.mid(out.lastIndexOf('\n') + 1)).object();
        QCOMPARE(j["models"].toArray().toVariantList(), (QVariantList{"tiny-a", "library/book"}));
        QCOMPARE(j["plain"].toObject()["object"].toString(), QString("chat.completion"));
        const QString plain = j["plain"].toObject()["content"].toString();
        QVERIFY(!plain.isEmpty());
        QCOMPARE(j["stream"].toObject()["content"].toString(), plain);
        QVERIFY(j["stream"].toObject()["chunks"].toInt() >= 3);
        QCOMPARE(j["stream"].toObject()["usage"].toObject()["completion_tokens"].toInt(),
                 j["plain"].toObject()["usage"].toObject()["completion_tokens"].toInt());
        QCOMPARE(j["library"].toObject()["usage"].toObject()["prompt_tokens_details"].toObject()["cached_tokens"].toInteger(), contextTokens_);
        QCOMPARE(j["notFound"].toObject()["status"].toInt(), 404);
        QCOMPARE(j["badRequest"].toObject()["status"].toInt(), 400);
        QVERIFY(j["badRequest"].toObject()["message"].toString().contains("temperature"));
    }
};

QTEST_GUILESS_MAIN(TestServe)
#include "test_serve.moc"
