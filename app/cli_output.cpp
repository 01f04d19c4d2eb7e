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
        // C1 controls (U+009B is a one-character CSI to terminals that honour 8-bit controls) and
        // the bidirectional overrides and isolates, which reorder what follows them on screen.
        else if ((u >= 0x80 && u <= 0x9f) || (u >= 0x202a && u <= 0x202e) || (u >= 0x2066 && u <= 0x2069))
            r += QString("\\u%1").arg(static_cast<int>(u), 4, 16, QChar('0'));
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
