#include "chat_export.h"

namespace quire::app {

QString chatMarkdown(const LibraryRow& library, const ChatRow& chat, const QList<MessageRow>& messages) {
    QString md = QString("# %1\n\n*Library: %2 — chat %3, %4*\n\n").arg(chat.title, library.name).arg(chat.id).arg(chat.created);
    for (const MessageRow& m : messages) md += QString("## %1\n\n%2\n\n").arg(m.role == "user" ? "Question" : "Answer", m.content.trimmed());
    return md;
}

}  // namespace quire::app
