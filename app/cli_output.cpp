#include "cli_output.h"

#include <unistd.h>

#include <cstdio>

namespace quire::cli {

namespace {
void write(std::FILE* stream, int fd, const QString& text) {
    const QByteArray b = (::isatty(fd) ? visibleControls(text) : text).toUtf8();
    std::fwrite(b.constData(), 1, static_cast<size_t>(b.size()), stream);
    std::fflush(stream);
}
}  // namespace

QString visibleControls(const QString& text) {
    QString r;
    r.reserve(text.size());
    for (const QChar c : text) {
        const char16_t u = c.unicode();
        if ((u < 0x20 && u != '\n' && u != '\t') || u == 0x7f) r += QString("\\x%1").arg(static_cast<int>(u), 2, 16, QChar('0'));
        else r += c;
    }
    return r;
}

void out(const QString& text) { write(stdout, STDOUT_FILENO, text); }

int fail(const QString& message) {
    write(stderr, STDERR_FILENO, "quire: " + message + "\n");
    return 1;
}

}  // namespace quire::cli
