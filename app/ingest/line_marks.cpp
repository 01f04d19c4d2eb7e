#include "line_marks.h"

namespace quire::app {

QString lineMark(qint64 line) { return QString("--- line %1 ---").arg(line); }

QString withLineMarks(const QString& text, int every) {
    if (every <= 0) return text;
    QString out;
    out.reserve(text.size() + text.size() / 40);
    qint64 line = 1;
    qsizetype start = 0;
    while (start < text.size()) {
        if (line > 1 && (line - 1) % every == 0) out += lineMark(line) + '\n';
        const qsizetype nl = text.indexOf('\n', start);
        const qsizetype end = nl < 0 ? text.size() : nl + 1;
        out += QStringView(text).mid(start, end - start);
        start = end;
        ++line;
    }
    return out;
}

QStringList removeLineMarks(const QString& rendered) {
    QStringList lines = rendered.split('\n');
    if (!lines.isEmpty() && lines.last().isEmpty()) lines.removeLast();  // the text ends with a newline
    QStringList out;
    out.reserve(lines.size());
    for (const QString& l : lines) {
        // A mark belongs before the line that comes next; anything else is the file's own text.
        if (l.startsWith(QLatin1String("--- line ")) && l == lineMark(out.size() + 1) && out.size() > 0) continue;
        out.append(l);
    }
    return out;
}

}  // namespace quire::app
