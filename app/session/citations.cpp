#include "citations.h"

#include <QFileInfo>
#include <QJsonObject>
#include <QRegularExpression>

#include "ingest/line_marks.h"

namespace quire::app {

QString citationInstruction() {
    // Fixed text: it sits at the start of every context, so it must not depend on the library
    // (adding a source must only append tokens).
    return "Cite what you rely on in square brackets, in exactly one of these forms: a page of a PDF as "
           "[book.pdf p. 37], or [p. 37] when the library holds a single PDF; a line of a file as "
           "[src/foo.cpp:120], with the path shown after ==> and the line counted from the nearest "
           "\"--- line N ---\" mark; a line of a single text file as [notes.txt:12].";
}

QJsonArray citationsToJson(const QList<Citation>& citations) {
    QJsonArray list;
    for (const Citation& c : citations) {
        QJsonObject o{{"source", c.sourceId}, {"path", c.path}, {"label", c.label}, {"written", c.written}, {"text", c.excerpt}};
        o.insert(c.kind == "page" ? "page" : "line", c.kind == "page" ? c.page : c.line);
        list.append(o);
    }
    return list;
}

namespace {

// The regions of an answer that are code (fenced blocks and inline spans): no citations there.
QList<QPair<qsizetype, qsizetype>> codeRanges(const QString& text) {
    QList<QPair<qsizetype, qsizetype>> ranges;
    static const QRegularExpression code("```.*?(```|$)|`[^`\\n]*`", QRegularExpression::DotMatchesEverythingOption);
    for (auto it = code.globalMatch(text); it.hasNext();) {
        const auto m = it.next();
        ranges.append({m.capturedStart(), m.capturedEnd()});
    }
    return ranges;
}

QString excerptOf(const QStringList& lines, int first, int last) {
    QStringList part;
    for (int i = std::max(1, first); i <= std::min<int>(static_cast<int>(lines.size()), last); ++i) part << lines[i - 1];
    return part.join('\n');
}

}  // namespace

Result<CitationIndex> CitationIndex::forLibrary(LibraryDb& db, qint64 libraryId) {
    CitationIndex index;
    auto sources = db.sources(libraryId);
    if (!sources) return sources.status();
    for (const SourceRow& s : sources.value()) {
        if (s.status != "ready") continue;
        auto text = db.sourceText(s.id);
        if (!text) return text.status();
        index.addSource(s, text.value());
    }
    return index;
}

void CitationIndex::addSource(const SourceRow& row, const QString& text) {
    if (row.kind == "pdf") {
        Pdf pdf{row.id, row.path, QFileInfo(row.path).fileName(), {}};
        qsizetype at = text.indexOf(QString("\n--- page 1 ---\n"));
        for (int page = 1; at >= 0; ++page) {
            const QString mark = QString("\n--- page %1 ---\n").arg(page);
            const qsizetype begin = at + mark.size();
            const qsizetype next = text.indexOf(QString("\n--- page %1 ---\n").arg(page + 1), begin);
            pdf.pages << text.mid(begin, next < 0 ? -1 : next - begin).trimmed();
            at = next;
        }
        pdfs_.append(pdf);
    } else if (row.kind == "code") {
        const QString tree = QFileInfo(row.path).fileName();
        static const QRegularExpression header("\\n==> (.+) <==\\n");
        QList<QRegularExpressionMatch> heads;
        for (auto it = header.globalMatch(text); it.hasNext();) heads.append(it.next());
        for (int i = 0; i < heads.size(); ++i) {
            const QString rel = heads[i].captured(1);
            const qsizetype begin = heads[i].capturedEnd();
            const qsizetype end = i + 1 < heads.size() ? heads[i + 1].capturedStart() : text.size();
            files_.append({row.id, row.path + "/" + rel, {rel, tree + "/" + rel}, removeLineMarks(text.mid(begin, end - begin))});
        }
    } else {
        const qsizetype body = text.indexOf('\n');
        files_.append({row.id, row.path, {QFileInfo(row.path).fileName()}, removeLineMarks(body < 0 ? QString() : text.mid(body + 1))});
    }
}

QStringList CitationIndex::fileLines(const QString& path) const {
    for (const File& f : files_)
        if (f.path == path) return f.lines;
    return {};
}

QString CitationIndex::pageText(const QString& pdfPath, int page) const {
    for (const Pdf& p : pdfs_)
        if (p.path == pdfPath && page >= 1 && page <= p.pages.size()) return p.pages[page - 1];
    return {};
}

bool CitationIndex::resolvePage(const Pdf& pdf, int page, Citation& c) const {
    if (page < 1 || page > pdf.pages.size()) return false;
    c.sourceId = pdf.sourceId;
    c.kind = "page";
    c.path = pdf.path;
    c.page = page;
    c.label = pdfs_.size() == 1 ? QString("p. %1").arg(page) : QString("%1 p. %2").arg(pdf.name).arg(page);
    const QString text = pdf.pages[page - 1].simplified();
    c.excerpt = text.size() > 280 ? text.left(280) + "…" : text;
    return true;
}

bool CitationIndex::resolveLine(const File& file, int line, Citation& c) const {
    if (line < 1 || line > file.lines.size()) return false;
    c.sourceId = file.sourceId;
    c.kind = "line";
    c.path = file.path;
    c.line = line;
    c.label = QString("%1:%2").arg(file.names.first()).arg(line);
    c.excerpt = excerptOf(file.lines, line - 1, line + 1);
    return true;
}

bool CitationIndex::resolve(const QString& inner, Citation& c) const {
    static const QRegularExpression onlyPage("^p\\.\\s*(\\d{1,6})$");
    static const QRegularExpression namedPage("^(.+?)\\s+p\\.\\s*(\\d{1,6})$");
    static const QRegularExpression fileLine("^(.+?):(\\d{1,7})(?:\\s*[-–]\\s*\\d{1,7})?$");
    if (const auto m = onlyPage.match(inner); m.hasMatch())
        return pdfs_.size() == 1 && resolvePage(pdfs_.first(), m.captured(1).toInt(), c);
    if (const auto m = namedPage.match(inner); m.hasMatch()) {
        for (const Pdf& p : pdfs_)
            if (p.name.compare(m.captured(1), Qt::CaseInsensitive) == 0) return resolvePage(p, m.captured(2).toInt(), c);
        return false;
    }
    if (const auto m = fileLine.match(inner); m.hasMatch()) {
        QString name = m.captured(1);
        if (name.startsWith("./")) name = name.mid(2);
        for (const File& f : files_)
            if (f.names.contains(name)) return resolveLine(f, m.captured(2).toInt(), c);
        for (const File& f : files_)  // a path written from further up, ending in a known one
            for (const QString& n : f.names)
                if (name.endsWith("/" + n)) return resolveLine(f, m.captured(2).toInt(), c);
    }
    return false;
}

QList<Citation> CitationIndex::find(const QString& answer) const {
    QList<Citation> out;
    if (isEmpty()) return out;
    static const QRegularExpression bracket("\\[([^\\[\\]\\n]{1,300})\\](?!\\()");
    const auto code = codeRanges(answer);
    for (auto it = bracket.globalMatch(answer); it.hasNext();) {
        const auto m = it.next();
        bool inCode = false;
        for (const auto& r : code) inCode = inCode || (m.capturedStart() >= r.first && m.capturedStart() < r.second);
        if (inCode) continue;
        Citation c;
        c.start = m.capturedStart();
        c.length = m.capturedLength();
        c.written = m.captured(0);
        if (resolve(m.captured(1).trimmed(), c)) out.append(c);
    }
    return out;
}

}  // namespace quire::app
