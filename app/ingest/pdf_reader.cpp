#include "pdf_reader.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>

#include <sys/prctl.h>

#include <csignal>

namespace quire::app {

PdfText readPdf(const QString& path, const PdfReaderOptions& options) {
    PdfText out;
    QProcess helper;
    // The password goes through a pipe: on the command line every user of the machine could read it.
    const QStringList args{"pdf-extract", path, "--password-stdin"};
    // The helper ends with Quire: a killed `quire add` must not leave it reading for minutes.
    helper.setChildProcessModifier([] { prctl(PR_SET_PDEATHSIG, SIGKILL); });
    helper.start(options.helperProgram, args);
    if (!helper.waitForStarted(10000)) {
        out.reason = "cannot start the PDF reader (" + helper.errorString() + ")";
        return out;
    }
    helper.write(options.password.toUtf8() + "\n");
    helper.closeWriteChannel();
    if (!helper.waitForFinished(options.timeoutMs)) {
        helper.kill();
        helper.waitForFinished(5000);
        out.reason = QString("the PDF reader gave up after %1 s").arg(options.timeoutMs / 1000);
        return out;
    }
    if (helper.exitStatus() != QProcess::NormalExit) {
        out.reason = "the PDF reader crashed on this file";
        return out;
    }
    QJsonParseError err{};
    const QJsonDocument doc = QJsonDocument::fromJson(helper.readAllStandardOutput(), &err);
    if (err.error != QJsonParseError::NoError || !doc.isObject()) {
        out.reason = "the PDF reader returned no result (exit code " + QString::number(helper.exitCode()) + ")";
        return out;
    }
    const QJsonObject o = doc.object();
    const QString status = o.value("status").toString();
    if (status == "needs_password") {
        out.outcome = PdfText::Outcome::needsPassword;
        out.reason = "the PDF is encrypted: a password is needed";
        return out;
    }
    if (status == "wrong_password") {
        out.outcome = PdfText::Outcome::wrongPassword;
        out.reason = "the password does not open this PDF";
        return out;
    }
    if (status != "ok") {
        out.reason = o.value("reason").toString("unreadable PDF");
        return out;
    }
    bool anyText = false;
    for (const QJsonValue& p : o.value("pages").toArray()) {
        out.pages << p.toString();
        anyText = anyText || !p.toString().trimmed().isEmpty();
    }
    if (out.pages.isEmpty()) {
        out.reason = "the PDF has no pages";
        return out;
    }
    if (!anyText) {
        out.outcome = PdfText::Outcome::noText;
        out.reason = "no text (scanned?): no page has a text layer";
        return out;
    }
    out.outcome = PdfText::Outcome::ok;
    return out;
}

}  // namespace quire::app
