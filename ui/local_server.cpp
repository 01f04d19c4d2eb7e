#include "local_server.h"

#include <QRegularExpression>

namespace quire::ui {

LocalServer::LocalServer(QString program, QString dataDir, QObject* parent)
    : QObject(parent), program_(std::move(program)), dataDir_(std::move(dataDir)) {}

LocalServer::~LocalServer() { stop(); }

QString LocalServer::address() const { return state_ == State::listening ? QString("http://127.0.0.1:%1/v1").arg(port_) : QString(); }

QString LocalServer::statusText() const {
    switch (state_) {
    case State::off: return tr("Off");
    case State::starting: return tr("Starting on port %1…").arg(port_);
    case State::listening: return tr("Serving at %1 (each library is the model library/NAME)").arg(address());
    case State::failed: return tr("Not serving: %1").arg(why_);
    }
    return {};
}

void LocalServer::setState(State s, const QString& why) {
    state_ = s;
    why_ = why;
    emit stateChanged();
}

void LocalServer::start(int port, const QStringList& extraArgs) {
    if (process_ && port == port_ && (state_ == State::starting || state_ == State::listening)) return;
    stop();
    port_ = port;
    stdout_.clear();
    stderr_.clear();
    process_ = new QProcess(this);
    connect(process_, &QProcess::readyReadStandardOutput, this, [this] {
        stdout_ += process_->readAllStandardOutput();
        static const QRegularExpression listening("listening on http://127\\.0\\.0\\.1:(\\d+)");
        if (const auto m = listening.match(QString::fromUtf8(stdout_)); state_ == State::starting && m.hasMatch()) {
            port_ = m.captured(1).toInt();  // the port asked for, or the one chosen for port 0
            setState(State::listening);
        }
    });
    connect(process_, &QProcess::readyReadStandardError, this, [this] {
        stderr_ += process_->readAllStandardError();
        if (stderr_.size() > 65536) stderr_ = stderr_.right(65536);
    });
    connect(process_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
        if (e == QProcess::FailedToStart) setState(State::failed, tr("cannot run %1").arg(program_));
    });
    connect(process_, &QProcess::finished, this, [this](int code, QProcess::ExitStatus) {
        // The last line the server wrote says why (port in use, model not loadable).
        const QStringList lines = QString::fromUtf8(stderr_).trimmed().split('\n');
        QString last = lines.isEmpty() ? QString() : lines.last();
        last.remove("quire serve: ").remove("quire: ");
        setState(State::failed, last.isEmpty() ? tr("the server exited (code %1)").arg(code) : last);
    });
    setState(State::starting);
    process_->start(program_, QStringList{"serve", "--host", "127.0.0.1", "--port", QString::number(port), "--data-dir", dataDir_} + extraArgs);
}

void LocalServer::stop() {
    if (!process_) return;
    QProcess* p = process_;
    process_ = nullptr;
    p->disconnect(this);
    if (p->state() != QProcess::NotRunning) {
        p->terminate();
        if (!p->waitForFinished(10000)) {
            p->kill();
            p->waitForFinished(5000);
        }
    }
    p->deleteLater();
    if (state_ != State::off) setState(State::off);
}

}  // namespace quire::ui
