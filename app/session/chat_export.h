#pragma once
// A chat as Markdown: title, library, then each question and answer.

#include <QList>
#include <QString>

#include "library/library_db.h"

namespace quire::app {

QString chatMarkdown(const LibraryRow& library, const ChatRow& chat, const QList<MessageRow>& messages);

}  // namespace quire::app
