#pragma once
// The remote backend: questions go to an OpenAI-compatible server (quire serve, SGLang, vLLM)
// while the library, ingestion, chats and export stay local. The library's context is sent as the
// first (system) message, byte-identical from question to question, so the server's prefix cache
// (SGLang's radix cache, vLLM's automatic prefix caching) reuses its computed state.

#include <QString>

#include <atomic>
#include <functional>
#include <optional>

#include "library/library_db.h"
#include "openai_client.h"
#include "session/session_service.h"

namespace quire::app {

struct RemoteBackendSettings {
    QString url;         // e.g. http://127.0.0.1:8080/v1
    QString model;       // the model id on that server
    QString apiKeyFile;  // absolute path, or empty
};

// The configured remote backend, or nothing when questions are answered by the local engine.
Result<std::optional<RemoteBackendSettings>> remoteBackend(LibraryDb& db);
// Saves (or, with nothing, clears) the remote backend choice.
Status setRemoteBackend(LibraryDb& db, const std::optional<RemoteBackendSettings>& settings);
// The endpoint to call, the API key read from its file.
Result<remote::Endpoint> remoteEndpoint(const RemoteBackendSettings& settings);

// The library's context as text: the system prompt, then every ready source in library order, as
// the local engine reads it. The same library gives the same bytes.
Result<QString> libraryContextText(LibraryDb& db, const LibraryRow& library);

struct RemoteAskResult {
    qint64 chatId = 0;
    QString answer;
    QString stopReason;
    qint64 promptTokens = 0, cachedTokens = 0, completionTokens = 0;
    double firstTokenSeconds = 0;
};

// Asks `question` in chat o.chatId (0: a new chat) through the remote server. The question and the
// answer are stored only once the whole answer has arrived; on any failure the chat is as it was
// and `partial` (when given) holds the answer's text received so far.
Result<RemoteAskResult> askRemote(LibraryDb& db, const remote::Endpoint& endpoint, const LibraryRow& library,
                                  const QString& question, const AskOptions& o, QString* partial);

}  // namespace quire::app
