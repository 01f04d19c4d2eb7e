// `quire model download` end to end against a hub on loopback: a QTcpServer started by the test
// serves a tiny model folder the way the Hugging Face Hub does (the file list with LFS sha256 and
// git blob ids, resolve/main/FILE redirected to a CDN path, HTTP Range). Covered: a connection
// dropped mid-file (resumed with Range), a checksum mismatch (refused, the download kept as .part
// and used by the next run), not enough disk space (refused before anything is fetched), an unsafe
// file name, an unknown repository, the CLI with HF_ENDPOINT, and the window's "Get model" dialog.
#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTcpServer>
#include <QTcpSocket>
#include <QtTest>

#include "model_download/hub_download.h"
#include "model_download_dialog.h"
#include "test_support.h"

using namespace quire;
using namespace quire::app;

namespace {

// A minimal HTTP/1.1 server for one repository ("tiny/model"), closing each connection after one
// response.
class FakeHub : public QObject {
public:
    explicit FakeHub(const QString& folder) : folder_(folder) {
        QVERIFY(server_.listen(QHostAddress::LocalHost));
        connect(&server_, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket* s = server_.nextPendingConnection()) {
                connect(s, &QTcpSocket::readyRead, this, [this, s] { onData(s); });
                connect(s, &QTcpSocket::disconnected, s, &QObject::deleteLater);
            }
        });
    }
    QString endpoint() const { return QString("http://127.0.0.1:%1").arg(server_.serverPort()); }

    QString dropFile;        // the first request for this file breaks off halfway
    QString wrongShaFile;    // the file list gives this file a wrong sha256
    QStringList extraNames;  // more names in the file list (unsafe ones, for the test)
    bool ignoreRange = false;  // answer every request with the whole file (200), as some servers do
    QStringList ranges;      // "FILE RANGE" of every file request
    int fileRequests = 0;

private:
    void onData(QTcpSocket* s) {
        QByteArray& buf = pending_[s];
        buf += s->readAll();
        const qsizetype end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const QList<QByteArray> lines = buf.left(end).split('\n');
        const QList<QByteArray> first = lines.first().trimmed().split(' ');
        QByteArray range;
        for (const QByteArray& l : lines)
            if (l.toLower().startsWith("range:")) range = l.mid(6).trimmed();
        pending_.remove(s);
        respond(s, first.size() > 1 ? QString::fromUtf8(first[1]) : QString(), range);
    }

    void send(QTcpSocket* s, const QByteArray& status, const QByteArray& headers, const QByteArray& body, qint64 declared = -1) {
        s->write("HTTP/1.1 " + status + "\r\nConnection: close\r\nContent-Length: " +
                 QByteArray::number(declared < 0 ? body.size() : declared) + "\r\n" + headers + "\r\n" + body);
        s->disconnectFromHost();
    }

    QJsonObject sibling(const QString& rel) const {
        const QByteArray bytes = test::read_all((folder_ + "/" + rel).toStdString());
        QJsonObject o{{"rfilename", rel}, {"size", bytes.size()},
                      {"blobId", QString(QCryptographicHash::hash("blob " + QByteArray::number(bytes.size()) + '\0' + bytes,
                                                                  QCryptographicHash::Sha1).toHex())}};
        if (rel.endsWith(".safetensors") || rel.endsWith(".model")) {
            QString sha = QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex();
            if (rel == wrongShaFile) sha = QString(64, 'a');
            o.insert("lfs", QJsonObject{{"sha256", sha}, {"size", bytes.size()}, {"pointerSize", 134}});
        }
        return o;
    }

    void respond(QTcpSocket* s, const QString& target, const QByteArray& range) {
        if (target == "/api/models/tiny/model/revision/main?blobs=true") {
            QJsonArray siblings;
            for (QDirIterator it(folder_, QDir::Files, QDirIterator::Subdirectories); it.hasNext();)
                siblings.append(sibling(QDir(folder_).relativeFilePath(it.next())));
            for (const QString& n : extraNames) siblings.append(QJsonObject{{"rfilename", n}, {"size", 1}});
            send(s, "200 OK", "Content-Type: application/json\r\n",
                 QJsonDocument(QJsonObject{{"id", "tiny/model"}, {"siblings", siblings}}).toJson());
            return;
        }
        if (target.startsWith("/tiny/model/resolve/main/")) {  // the hub redirects to its CDN
            send(s, "302 Found", "Location: /cdn/" + target.mid(25).toUtf8() + "\r\n", {});
            return;
        }
        if (!target.startsWith("/cdn/")) {
            send(s, "404 Not Found", {}, "Repository not found");
            return;
        }
        const QString rel = target.mid(5);
        QFile f(folder_ + "/" + rel);
        if (!f.open(QIODevice::ReadOnly)) {
            send(s, "404 Not Found", {}, "Entry not found");
            return;
        }
        const QByteArray all = f.readAll();
        ++fileRequests;
        ranges << rel + " " + QString::fromUtf8(range);
        qint64 from = 0;
        if (range.startsWith("bytes=") && !ignoreRange) from = range.mid(6, range.indexOf('-') - 6).toLongLong();
        const QByteArray body = all.mid(from);
        if (rel == dropFile && !dropped_) {
            dropped_ = true;
            send(s, "200 OK", {}, body.left(body.size() / 2), body.size());  // declares all, sends half
            return;
        }
        if (from > 0)
            send(s, "206 Partial Content",
                 QString("Content-Range: bytes %1-%2/%3\r\n").arg(from).arg(all.size() - 1).arg(all.size()).toUtf8(), body);
        else
            send(s, "200 OK", {}, body);
    }

    QString folder_;
    QTcpServer server_;
    QHash<QTcpSocket*, QByteArray> pending_;
    bool dropped_ = false;
};

const QString kShard = "model-00001-of-00002.safetensors";

}  // namespace

class TestModelDownload : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString model_ = QString::fromStdString(test::tiny_model("tiny-a"));

    DownloadOptions options(const FakeHub& hub, const QString& to) {
        DownloadOptions o;
        o.repo = "tiny/model";
        o.endpoint = hub.endpoint();
        o.targetDir = to;
        o.timeoutMs = 10000;
        return o;
    }
    void compareWithSource(const QString& to) {
        for (QDirIterator it(model_, QDir::Files); it.hasNext();) {
            const QString p = it.next();
            QCOMPARE(test::read_all((to + "/" + QFileInfo(p).fileName()).toStdString()), test::read_all(p.toStdString()));
        }
        QVERIFY(QDir(to).entryList({"*.part"}, QDir::Files).isEmpty());
    }

private slots:
    void resumes_after_a_dropped_connection() {
        FakeHub hub(model_);
        hub.dropFile = kShard;
        const QString to = tmp_.path() + "/resume";
        DownloadOptions o = options(hub, to);
        QList<DownloadProgress> seen;
        QStringList notices;
        o.onProgress = [&](const DownloadProgress& p) { seen << p; };
        o.onNotice = [&](const QString& n) { notices << n; };
        auto r = downloadModel(o);
        QVERIFY2(r.is_ok(), r.status().message().c_str());
        compareWithSource(to);
        QCOMPARE(r->fetched.size(), QDir(model_).entryList(QDir::Files).size());
        // The shard was asked for from the start, then from where the drop left it. (Qt's HTTP layer may
        // also resend the first request once by itself when the server closes the connection.)
        const QStringList shardRequests = hub.ranges.filter(kShard);
        QVERIFY2(shardRequests.size() >= 2 && shardRequests.size() <= 3, qPrintable(hub.ranges.join(" | ")));
        QVERIFY(!shardRequests.first().contains("bytes="));
        QVERIFY2(shardRequests.last().contains("bytes="), qPrintable(shardRequests.join(" | ")));
        QVERIFY(shardRequests.last().section("bytes=", 1).section('-', 0, 0).toLongLong() > 0);
        QVERIFY(notices.join('\n').contains("connection dropped in " + kShard));
        QVERIFY(!seen.isEmpty());
        QCOMPARE(seen.last().done, seen.last().total);
        // A second run fetches nothing: every file is verified as already there.
        const int before = hub.fileRequests;
        auto again = downloadModel(o);
        QVERIFY(again.is_ok());
        QCOMPARE(again->fetched.size(), 0);
        QCOMPARE(hub.fileRequests, before);
    }

    void starts_over_when_the_server_ignores_the_range() {
        FakeHub hub(model_);
        hub.dropFile = kShard;
        hub.ignoreRange = true;
        const QString to = tmp_.path() + "/norange";
        DownloadOptions o = options(hub, to);
        DownloadProgress last;
        o.onProgress = [&](const DownloadProgress& p) { last = p; };
        auto r = downloadModel(o);
        QVERIFY2(r.is_ok(), r.status().message().c_str());
        compareWithSource(to);
        QVERIFY(hub.ranges.filter(kShard).size() >= 2);
        QCOMPARE(last.done, last.total);  // the bytes fetched twice are counted in the total
    }

    void refuses_a_checksum_mismatch_and_keeps_the_download() {
        FakeHub hub(model_);
        hub.wrongShaFile = kShard;
        const QString to = tmp_.path() + "/mismatch";
        auto r = downloadModel(options(hub, to));
        QVERIFY(!r.is_ok());
        QCOMPARE(r.status().code(), ErrorCode::invalid_checkpoint);
        QVERIFY(QString::fromStdString(r.status().message()).contains("sha256"));
        QVERIFY(!QFile::exists(to + "/" + kShard));        // not used
        QVERIFY(QFile::exists(to + "/" + kShard + ".part"));  // kept
        QCOMPARE(QFileInfo(to + "/" + kShard + ".part").size(), QFileInfo(model_ + "/" + kShard).size());
        // The hub corrects its list: the next run verifies the kept download instead of fetching it.
        hub.wrongShaFile.clear();
        const qsizetype before = hub.ranges.filter(kShard).size();
        auto again = downloadModel(options(hub, to));
        QVERIFY2(again.is_ok(), again.status().message().c_str());
        QCOMPARE(hub.ranges.filter(kShard).size(), before);
        compareWithSource(to);
    }

    // Where the free space cannot be read (a file system that does not say), the download goes
    // ahead and says so, instead of taking "unknown" for "nothing free".
    void unknown_free_space_is_said_and_not_refused() {
        FakeHub hub(model_);
        const QString to = tmp_.path() + "/unknown-free";
        DownloadOptions o = options(hub, to);
        o.freeSpace = [](const QString&) { return qint64(-1); };
        QStringList notices;
        o.onNotice = [&](const QString& n) { notices << n; };
        auto r = downloadModel(o);
        QVERIFY2(r.is_ok(), r.status().message().c_str());
        QVERIFY2(notices.filter("cannot be read").size() == 1, qPrintable(notices.join('\n')));
        compareWithSource(to);
        // And the real reading of an existing folder is a number, not "unknown".
        QVERIFY(freeDiskSpace(tmp_.path()) > 0);
        QVERIFY(freeDiskSpace(tmp_.path() + "/not/yet/made") > 0);
    }

    void refuses_up_front_without_disk_space() {
        FakeHub hub(model_);
        const QString to = tmp_.path() + "/full";
        DownloadOptions o = options(hub, to);
        qint64 asked = 0;
        o.freeSpace = [&](const QString&) {
            ++asked;
            return qint64(1000);
        };
        auto r = downloadModel(o);
        QVERIFY(!r.is_ok());
        QCOMPARE(asked, 1);
        const QString message = QString::fromStdString(r.status().message());
        QVERIFY2(message.contains("not enough disk space") && message.contains("0.00 GB free"), qPrintable(message));
        QCOMPARE(hub.fileRequests, 0);
        QVERIFY(!QDir(to).exists());
    }

    void refuses_bad_listings_and_names() {
        FakeHub hub(model_);
        hub.extraNames = {"../escape.txt"};
        auto r = downloadModel(options(hub, tmp_.path() + "/unsafe"));
        QVERIFY(!r.is_ok());
        QVERIFY(QString::fromStdString(r.status().message()).contains("unsafe file name: '../escape.txt'"));
        DownloadOptions o = options(hub, tmp_.path() + "/unknown");
        o.repo = "nobody/nothing";
        r = downloadModel(o);
        QVERIFY(!r.is_ok());
        QVERIFY2(QString::fromStdString(r.status().message()).contains("HTTP 404"), r.status().message().c_str());
        o.repo = "not a repo";
        QVERIFY(QString::fromStdString(downloadModel(o).status().message()).contains("not a repository name"));
    }

    void cli_downloads_with_hf_endpoint() {
        FakeHub hub(model_);
        hub.dropFile = kShard;
        const QString to = tmp_.path() + "/cli";
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("HF_ENDPOINT", hub.endpoint());
        p.setProcessEnvironment(env);
        p.start(QString::fromStdString(test::quire_binary()),
                {"model", "download", "tiny/model", "--to", to, "--data-dir", tmp_.path() + "/cli-data"});
        QVERIFY(p.waitForStarted());
        // The hub lives on this thread: spin its event loop while the child downloads.
        QTRY_VERIFY_WITH_TIMEOUT(p.state() == QProcess::NotRunning, 60000);
        const QString err = QString::fromUtf8(p.readAllStandardError()), out = QString::fromUtf8(p.readAllStandardOutput());
        QVERIFY2(p.exitCode() == 0, qPrintable(err));
        QVERIFY(err.contains("from " + hub.endpoint()));
        QVERIFY(err.contains("resuming"));
        QVERIFY(err.contains("ETA"));
        QVERIFY(out.contains("to answer with it: quire config model " + to));
        compareWithSource(to);
        // Bad usage is refused with the usage text.
        QCOMPARE(QProcess::execute(QString::fromStdString(test::quire_binary()), {"model", "fetch"}), 2);
    }

    void dialog_downloads_and_offers_the_model() {
        FakeHub hub(model_);
        hub.dropFile = kShard;
        qputenv("HF_ENDPOINT", hub.endpoint().toUtf8());
        ui::ModelDownloadDialog dialog(tmp_.path() + "/models");
        dialog.setRepository("tiny/model");
        QSignalSpy done(&dialog, &ui::ModelDownloadDialog::finished);
        dialog.start();
        QVERIFY(dialog.running());
        QVERIFY(done.wait(60000));
        qunsetenv("HF_ENDPOINT");
        QVERIFY2(done.first().first().toBool(), qPrintable(dialog.statusText()));
        QCOMPARE(dialog.downloadedModel(), tmp_.path() + "/models/model");
        QVERIFY(dialog.statusText().contains("ready to use"));
        compareWithSource(tmp_.path() + "/models/model");
    }
};

QTEST_MAIN(TestModelDownload)
#include "test_model_download.moc"
