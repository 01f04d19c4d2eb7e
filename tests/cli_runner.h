#pragma once
// Runs the quire command line in tests and reads its JSON answer.

#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QString>
#include <QStringList>

#include "test_support.h"

namespace quire::test {

struct CliResult {
    int code = -1;
    QString out, err;
    QJsonObject json() const {
        const QStringList lines = out.trimmed().split('\n');
        return QJsonDocument::fromJson(lines.last().toUtf8()).object();
    }
};

inline CliResult runQuire(const QStringList& args, int timeoutMs = 300000) {
    QProcess p;
    p.start(QString::fromStdString(quire_binary()), args);
    p.waitForFinished(timeoutMs);
    return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()), QString::fromUtf8(p.readAllStandardError())};
}

}  // namespace quire::test
