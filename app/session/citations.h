#pragma once
// Citations in an answer. The system prompt asks for one fixed form (citationInstruction()):
//   [p. 37]             the page of the library's only PDF
//   [book.pdf p. 37]    a page of a named PDF
//   [src/foo.cpp:120]   a line of a file in a source tree (or [notes.txt:12] for a text source);
//                       a range [src/foo.cpp:120-135] cites its first line
// CitationIndex knows the library's ready sources (pages of each PDF, lines of each file, rebuilt
// from the stored text without its marks) and resolves the citations of an answer against them.
// Anything in brackets that is malformed, names no source, or points past its end is not a
// citation and stays plain text; so do brackets inside code.

#include <QHash>
#include <QJsonArray>
#include <QList>
#include <QString>
#include <QStringList>

#include "library/library_db.h"
#include "status.h"

namespace quire::app {

struct Citation {
    qsizetype start = 0, length = 0;  // where it stands in the answer, brackets included
    QString written;                  // as written: "[book.pdf p. 37]"
    qint64 sourceId = 0;
    QString kind;   // "page" or "line"
    QString path;   // absolute path of the PDF or of the file
    QString label;  // canonical: "book.pdf p. 37", "src/foo.cpp:120"
    int page = 0;   // 1-based, for "page"
    int line = 0;   // 1-based, for "line"
    QString excerpt;  // the text around it: the page's start, or the lines around the line
};

QString citationInstruction();

// For `quire ask --json`: source id, path, page or line, label, the text as written, excerpt.
QJsonArray citationsToJson(const QList<Citation>& citations);

class CitationIndex {
public:
    // Loads the ready sources of a library from the database.
    static Result<CitationIndex> forLibrary(LibraryDb& db, qint64 libraryId);
    // Adds one source from its row and its stored (rendered) text.
    void addSource(const SourceRow& row, const QString& storedText);

    // The citations of `answer` that resolve, in order of appearance.
    QList<Citation> find(const QString& answer) const;
    // The lines of a cited file (as it was read), or of a PDF page split in lines; empty if unknown.
    QStringList fileLines(const QString& absolutePath) const;
    QString pageText(const QString& pdfPath, int page) const;
    bool isEmpty() const { return pdfs_.isEmpty() && files_.isEmpty(); }

private:
    struct Pdf {
        qint64 sourceId = 0;
        QString path, name;
        QStringList pages;
    };
    struct File {
        qint64 sourceId = 0;
        QString path;        // absolute
        QStringList names;   // how a citation may name it: "src/foo.cpp", "tree/src/foo.cpp", "notes.txt"
        QStringList lines;
    };
    bool resolve(const QString& inner, Citation& c) const;
    bool resolvePage(const Pdf& pdf, int page, Citation& c) const;
    bool resolveLine(const File& file, int line, Citation& c) const;

    QList<Pdf> pdfs_;
    QList<File> files_;
};

}  // namespace quire::app
