#include "source_ingest.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>

#include "json.h"
#include "line_marks.h"
#include "pdf_reader.h"
#include "regular_file.h"

namespace quire::app {

namespace {

constexpr qint64 kMaxPdfBytes = qint64(2) << 30;

QString sha256(const QByteArray& bytes) { return QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex(); }

void ingestPdf(IngestedSource& s, const IngestOptions& o) {
    s.kind = "pdf";
    auto bytes = readRegularFile(s.path, kMaxPdfBytes);
    if (!bytes) {
        s.error = fileErrorReason(bytes.status(), s.path);
        return;
    }
    s.size = bytes->size();
    s.contentHash = sha256(bytes.value());
    PdfReaderOptions ro;
    ro.helperProgram = o.helperProgram;
    ro.password = o.password;
    ro.timeoutMs = o.pdfTimeoutMs;
    const PdfText pdf = readPdf(s.path, ro);
    switch (pdf.outcome) {
    case PdfText::Outcome::ok: break;
    case PdfText::Outcome::needsPassword:
    case PdfText::Outcome::wrongPassword:
        s.status = "needs password";
        s.error = pdf.reason;
        return;
    default:
        s.error = pdf.reason;
        return;
    }
    s.units = pdf.pages.size();
    QString text = "### Document: " + QFileInfo(s.path).fileName() + " (" + QString::number(s.units) + " pages)\n";
    for (int i = 0; i < pdf.pages.size(); ++i) text += QString("\n--- page %1 ---\n").arg(i + 1) + pdf.pages[i].trimmed() + "\n";
    s.text = text;
    s.status = "ready";
}

void ingestCode(IngestedSource& s, const IngestOptions& o) {
    s.kind = "code";
    const CodeTree tree = walkCodeTree(s.path, o.code);
    QCryptographicHash hash(QCryptographicHash::Sha256);
    QString text = "### Source tree: " + QFileInfo(s.path).fileName() + " (" + QString::number(tree.files.size()) + " files)\n";
    for (const CodeFile& f : tree.files) {
        text += "\n==> " + f.relativePath + " <==\n" + withLineMarks(f.text, o.lineMarkEvery);
        if (!f.text.endsWith('\n')) text += '\n';
        hash.addData(f.relativePath.toUtf8());
        hash.addData(QByteArray(1, '\0'));
        hash.addData(f.text.toUtf8());
    }
    for (const SkippedFile& k : tree.skipped) s.skipped += k.relativePath + ": " + k.reason + "\n";
    s.units = tree.files.size();
    s.size = tree.bytes;
    s.contentHash = hash.result().toHex();
    if (tree.files.isEmpty()) {
        s.error = "no text files to read in this folder";
        return;
    }
    s.text = text;
    s.status = "ready";
}

void ingestText(IngestedSource& s, const IngestOptions& o) {
    s.kind = "text";
    auto read = readRegularFile(s.path, o.code.maxFileBytes * 16);
    if (!read) {
        s.error = fileErrorReason(read.status(), s.path);
        return;
    }
    const QByteArray& bytes = read.value();
    s.size = bytes.size();
    s.contentHash = sha256(bytes);
    if (bytes.left(8192).contains('\0') || !quire::is_valid_utf8(std::string_view(bytes.constData(), static_cast<size_t>(bytes.size())))) {
        s.error = "not a text file (binary or not UTF-8)";
        return;
    }
    // Nothing to ask about (also what a /proc file reads as: its size says 0).
    if (QString::fromUtf8(bytes).trimmed().isEmpty()) {
        s.error = bytes.isEmpty() ? "the file is empty" : "the file holds only white space";
        return;
    }
    s.units = 1;
    s.text = "### File: " + QFileInfo(s.path).fileName() + "\n" + withLineMarks(QString::fromUtf8(bytes), o.lineMarkEvery);
    if (!s.text.endsWith('\n')) s.text += '\n';
    s.status = "ready";
}

}  // namespace

IngestedSource ingestSource(const QString& path, const IngestOptions& options) {
    IngestedSource s;
    const QFileInfo info(path);
    s.path = QDir::cleanPath(info.absoluteFilePath());  // "tree/" and "tree" are one source
    if (!info.exists()) {
        s.kind = "text";
        s.error = "no such file or folder";
        return s;
    }
    if (info.isDir()) {
        ingestCode(s, options);
    } else {
        // Only regular files: /dev/zero would never end and a FIFO would block forever.
        auto head = readRegularFileHead(path, 1024);
        if (!head) {
            s.kind = "text";
            s.error = fileErrorReason(head.status(), path);
            return s;
        }
        if (info.suffix().compare("pdf", Qt::CaseInsensitive) == 0 || head->startsWith("%PDF")) ingestPdf(s, options);
        else ingestText(s, options);
    }
    return s;
}

}  // namespace quire::app
