#pragma once
// Turns a path into a library source: a PDF (text page by page, with page markers), a folder of
// code (each file under a header with its relative path) or a single text file; files carry line
// marks (line_marks.h) so that answers can cite lines. Never throws; a
// source that cannot be read comes back with status "error" or "needs password" and a reason.

#include <QString>

#include "code_walker.h"
#include "line_marks.h"

namespace quire::app {

struct IngestOptions {
    QString helperProgram;  // the quire executable, for the PDF helper process
    QString password;       // for encrypted PDFs
    int pdfTimeoutMs = 120000;
    CodeWalkOptions code;
    int lineMarkEvery = kLineMarkEvery;  // a "--- line N ---" mark before every this many lines (0: none)
};

struct IngestedSource {
    QString path;  // absolute
    QString kind;  // "pdf", "code", "text"
    QString status = "error";  // "ready", "error", "needs password"
    QString error;
    QString text;  // the rendered source, headers included
    qint64 units = 0;  // pages or files
    qint64 size = 0;   // bytes read
    QString contentHash;
    QString skipped;  // "relative/path: reason" lines
};

IngestedSource ingestSource(const QString& path, const IngestOptions& options);

}  // namespace quire::app
