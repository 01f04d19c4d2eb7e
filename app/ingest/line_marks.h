#pragma once
// Line marks: what lets an answer cite a line of a file. A text or code file is rendered into the
// context with a mark line "--- line N ---" in front of every kLineMarkEvery-th line (N = 1 + k·every,
// k ≥ 1), so the model can count from the nearest mark to the line it cites. The marks cost well
// under 1 % of the context (docs/library.md has the measurement). removeLineMarks() gives back the
// file exactly as it was, for the citation index and the code view.

#include <QString>
#include <QStringList>

namespace quire::app {

inline constexpr int kLineMarkEvery = 50;

// The mark placed before line `line` (1-based).
QString lineMark(qint64 line);

// `text` with a mark before lines 1+every, 1+2·every, …; every ≤ 0 adds none.
QString withLineMarks(const QString& text, int every = kLineMarkEvery);

// The lines of a file rendered by withLineMarks (with any `every`, also 0), marks taken out. A mark
// is only recognised where one belongs: a line of the file that looks like a mark stays.
QStringList removeLineMarks(const QString& rendered);

}  // namespace quire::app
