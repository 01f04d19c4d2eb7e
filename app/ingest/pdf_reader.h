#pragma once
// Reads a PDF's text page by page through the `quire pdf-extract` helper process, with a time
// limit. Distinguishes "needs a password" from errors (as Okular's open result does).

#include <QString>
#include <QStringList>

namespace quire::app {

struct PdfText {
    enum class Outcome { ok, needsPassword, wrongPassword, noText, error };
    Outcome outcome = Outcome::error;
    QStringList pages;
    QString reason;  // for errors, in words
};

struct PdfReaderOptions {
    QString helperProgram;  // the quire executable
    QString password;
    int timeoutMs = 120000;
};

PdfText readPdf(const QString& path, const PdfReaderOptions& options);

}  // namespace quire::app
