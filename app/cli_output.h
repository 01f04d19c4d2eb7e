#pragma once
// How the library and remote commands print: out() to stdout, fail() to stderr as "quire: message"
// (returning exit code 1). On a terminal, control characters other than newline and tab are shown as
// \xNN: a file name, chat title or answer may hold escape sequences (a hostile source tree can name
// its files so), and printed raw they would recolour, retitle or rewrite the user's terminal.
// Redirected output (quire export > file) is written as it is.

#include <QString>

namespace quire::cli {

// `text` with every C0 control character but \n and \t, and DEL, written as \xNN.
QString visibleControls(const QString& text);
void out(const QString& text);
int fail(const QString& message);

}  // namespace quire::cli
