#include "remote_backend.h"

#include <QFile>

namespace quire::app {

using nlohmann::json;

namespace {
const QString kUrl = "backend.url", kModel = "backend.model", kKeyFile = "backend.api_key_file";
}

Result<std::optional<RemoteBackendSettings>> remoteBackend(LibraryDb& db) {
    auto url = db.setting(kUrl);
    if (!url) return url.status();
    if (url.value().isEmpty()) return std::optional<RemoteBackendSettings>{};
    auto model = db.setting(kModel);
    if (!model) return model.status();
    auto key = db.setting(kKeyFile);
    if (!key) return key.status();
    return std::optional<RemoteBackendSettings>(RemoteBackendSettings{url.value(), model.value(), key.value()});
}

Status setRemoteBackend(LibraryDb& db, const std::optional<RemoteBackendSettings>& s) {
    QUIRE_TRY(db.setSetting(kModel, s ? s->model : QString()));
    QUIRE_TRY(db.setSetting(kKeyFile, s ? s->apiKeyFile : QString()));
    return db.setSetting(kUrl, s ? s->url : QString());
}

Result<remote::Endpoint> remoteEndpoint(const RemoteBackendSettings& s) {
    remote::Endpoint e;
    e.url = s.url.toStdString();
    e.model = s.model.toStdString();
    if (!s.apiKeyFile.isEmpty()) {
        QFile f(s.apiKeyFile);
        if (!f.open(QIODevice::ReadOnly))
            return Status(ErrorCode::io_error, ("cannot read the API key file " + s.apiKeyFile + ": " + f.errorString()).toStdString());
        e.apiKey = QString::fromUtf8(f.read(4096)).trimmed().toStdString();
        if (e.apiKey.empty()) return Status(ErrorCode::invalid_argument, ("the API key file " + s.apiKeyFile + " is empty").toStdString());
    }
    return e;
}

Result<QString> libraryContextText(LibraryDb& db, const LibraryRow& library) {
    auto sources = db.sources(library.id);
    if (!sources) return sources.status();
    // The same text assembleContext encodes: the system prompt, a blank line, each source + "\n".
    QString text = (library.systemPrompt.isEmpty() ? defaultSystemPrompt() : library.systemPrompt) + "\n\n";
    for (const SourceRow& s : sources.value()) {
        if (s.status != "ready") continue;
        auto t = db.sourceText(s.id);
        if (!t) return t.status();
        text += t.value() + "\n";
    }
    return text;
}

Result<RemoteAskResult> askRemote(LibraryDb& db, const remote::Endpoint& endpoint, const LibraryRow& library, const QString& question,
                                  const AskOptions& o, QString* partial) {
    if (question.trimmed().isEmpty()) return Status(ErrorCode::invalid_argument, "the question is empty");
    auto context = libraryContextText(db, library);
    if (!context) return context.status();
    json messages = json::array({{{"role", "system"}, {"content", context.value().toStdString()}}});
    qint64 afterMessage = -1;  // the chat's last message this answer follows on from (recordExchange)
    if (o.chatId) {
        auto last = db.lastMessageId(o.chatId);
        if (!last) return last.status();
        afterMessage = last.value();
        auto chat = db.chat(o.chatId);
        if (!chat) return chat.status();
        if (!chat.value() || chat.value()->libraryId != library.id)
            return Status(ErrorCode::invalid_argument, QString("library '%1' has no chat %2").arg(library.name).arg(o.chatId).toStdString());
        auto history = db.messages(o.chatId);
        if (!history) return history.status();
        for (const MessageRow& m : history.value()) messages.push_back({{"role", m.role.toStdString()}, {"content", m.content.toStdString()}});
    }
    messages.push_back({{"role", "user"}, {"content", question.toStdString()}});
    json request = {{"messages", messages},
                    {"max_tokens", o.generation.max_tokens},
                    {"temperature", o.generation.sampling.temperature},
                    {"top_p", o.generation.sampling.top_p},
                    {"seed", o.generation.sampling.seed}};
    remote::StreamedAnswer got;
    auto answer = remote::streamChat(
        endpoint, request, [&](const std::string& piece) { if (o.onText) o.onText(QString::fromStdString(piece)); }, o.cancel, &got);
    if (partial) *partial = QString::fromStdString(got.text);
    if (!answer) return answer.status();

    RemoteAskResult r;
    MessageRow user;
    user.role = "user";
    user.content = question;
    MessageRow assistant;
    assistant.role = "assistant";
    assistant.content = QString::fromStdString(answer->text);
    assistant.firstTokenSeconds = answer->firstTokenSeconds;
    // The question and its answer together (with the chat, when new): all of it or none.
    auto chatId = db.recordExchange(o.chatId, library.id, question.left(80), user, assistant, afterMessage);
    if (!chatId) return chatId.status();
    r.chatId = chatId.value();
    r.answer = assistant.content;
    r.stopReason = answer->finishReason == "length" ? "max tokens" : "stop";
    r.promptTokens = answer->promptTokens;
    r.cachedTokens = answer->cachedTokens;
    r.completionTokens = answer->completionTokens;
    r.firstTokenSeconds = answer->firstTokenSeconds;
    return r;
}

}  // namespace quire::app
