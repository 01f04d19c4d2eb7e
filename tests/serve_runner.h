#pragma once
// Starts `quire serve` on a free loopback port for a test and talks to it with curl (the real
// HTTP client every user has). Every wait is bounded.

#include <QElapsedTimer>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QStringList>
#include <QThread>

#include <memory>

#include "test_support.h"

namespace quire::test {

struct HttpResult {
    int status = 0;
    QByteArray body;
    QJsonObject json() const { return QJsonDocument::fromJson(body).object(); }
    QString errorMessage() const { return json()["error"].toObject()["message"].toString(); }
};

// Runs curl with `args` (plus -sS and the status code written after the body); `input` goes to
// its standard input (use --data-binary @-).
inline HttpResult curl(QStringList args, const QByteArray& input = {}, int timeoutMs = 120000) {
    QProcess p;
    p.start("curl", QStringList{"-sS", "--max-time", QString::number(timeoutMs / 1000), "-w", "\n%{http_code}"} + args);
    if (!p.waitForStarted(10000)) return {};
    if (!input.isEmpty()) p.write(input);
    p.closeWriteChannel();
    p.waitForFinished(timeoutMs + 5000);
    QByteArray out = p.readAllStandardOutput();
    const qsizetype nl = out.lastIndexOf('\n');
    HttpResult r;
    r.status = out.mid(nl + 1).trimmed().toInt();
    r.body = out.left(nl < 0 ? 0 : nl);
    return r;
}

class ServeProcess {
public:
    ~ServeProcess() { stop(); }
    // Starts `quire serve --port 0 ARGS` and waits for its "listening on" line.
    bool start(const QStringList& args) {
        proc_ = std::make_unique<QProcess>();
        proc_->setProcessChannelMode(QProcess::SeparateChannels);
        proc_->start(QString::fromStdString(quire_binary()), QStringList{"serve", "--port", "0"} + args);
        QElapsedTimer t;
        t.start();
        static const QRegularExpression listening("listening on http://127\\.0\\.0\\.1:(\\d+)");
        while (t.elapsed() < 60000) {
            proc_->waitForReadyRead(200);
            out_ += proc_->readAllStandardOutput();
            if (auto m = listening.match(QString::fromUtf8(out_)); m.hasMatch()) {
                port_ = m.captured(1).toInt();
                return true;
            }
            if (proc_->state() == QProcess::NotRunning) break;
        }
        qWarning("quire serve did not start: %s", proc_->readAllStandardError().constData());
        return false;
    }
    // Waits until /health says the model is loaded.
    bool waitReady(int timeoutMs = 120000) {
        QElapsedTimer t;
        t.start();
        while (t.elapsed() < timeoutMs) {
            if (get("/health").status == 200) return true;
            QThread::msleep(50);
        }
        return false;
    }
    void stop() {
        if (!proc_ || proc_->state() == QProcess::NotRunning) return;
        proc_->terminate();
        if (!proc_->waitForFinished(20000)) proc_->kill();
        proc_->waitForFinished(5000);
    }
    QProcess& process() { return *proc_; }
    int port() const { return port_; }
    QString url(const QString& path) const { return QString("http://127.0.0.1:%1%2").arg(port_).arg(path); }
    HttpResult get(const QString& path, const QStringList& extra = {}) const { return curl(extra + QStringList{url(path)}); }
    HttpResult post(const QString& path, const QByteArray& body, const QStringList& extra = {}) const {
        return curl(extra + QStringList{"-H", "Content-Type: application/json", "--data-binary", "@-", url(path)}, body);
    }
    QJsonObject health() const { return get("/health").json(); }

private:
    std::unique_ptr<QProcess> proc_;
    QByteArray out_;
    int port_ = 0;
};

}  // namespace quire::test
