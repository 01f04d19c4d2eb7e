#pragma once
// The window's "Serve on localhost": runs `quire serve` on 127.0.0.1 as a child process (its own
// engine, so the window stays responsive while clients are answered) and reports its address once it
// listens, or why it could not start. Stopped with the window.

#include <QObject>
#include <QProcess>
#include <QString>

namespace quire::ui {

class LocalServer : public QObject {
    Q_OBJECT
public:
    enum class State { off, starting, listening, failed };

    // program: the quire executable; dataDir: the window's data folder (same libraries).
    LocalServer(QString program, QString dataDir, QObject* parent = nullptr);
    ~LocalServer() override;

    // Starts (or restarts, when the port differs) the server; port 0 lets it pick a free one (tests);
    // extraArgs e.g. --backend cuda --gpu 0.
    void start(int port, const QStringList& extraArgs = {});
    void stop();
    State state() const { return state_; }
    int port() const { return port_; }
    // http://127.0.0.1:PORT/v1 while listening, else empty.
    QString address() const;
    // One line for the Settings dialog: the address, "starting…", or the reason it stopped.
    QString statusText() const;

signals:
    void stateChanged();

private:
    void setState(State s, const QString& why = {});

    QString program_, dataDir_;
    QProcess* process_ = nullptr;
    QByteArray stdout_, stderr_;
    State state_ = State::off;
    int port_ = 0;
    QString why_;
};

}  // namespace quire::ui
