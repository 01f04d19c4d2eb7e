#pragma once
// The names of the state files in DATA/states: written by the session (session_service.cpp), and
// found by name when a chat or library is deleted (library_removal.cpp). A number owns its names
// alone, since library and chat numbers are never given twice (library_db.cpp, migration 4).

#include <QString>

namespace quire::app {

// A chat's state: a delta on its library's prefix state.
inline QString chatStateFile(qint64 chatId) { return QString("chat-%1.qstate").arg(chatId); }
// A library's prefix state after the tokens whose hash is `tokensHash`.
inline QString libraryStateFile(qint64 libraryId, const QString& tokensHash) {
    return QString("library-%1-%2.qstate").arg(libraryId).arg(tokensHash);
}
// Every prefix state file of a library (a QDir name filter).
inline QString libraryStateFiles(qint64 libraryId) { return libraryStateFile(libraryId, "*"); }

}  // namespace quire::app
