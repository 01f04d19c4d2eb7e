#include "command_remote.h"

#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include <cstdio>

#include "cli_output.h"
#include "interrupt.h"

namespace quire::cli {

using namespace quire::app;

int configBackendCommand(AppContext& ctx, const CommandLine& cl) {
    const QString url = cl.positional()[1];
    if (url == "local") {
        if (cl.isSet("model") || cl.isSet("api-key-file")) return cl.usageError("`config backend local` takes no --model or --api-key-file");
        if (Status st = setRemoteBackend(*ctx.db, std::nullopt); !st) return fail(QString::fromStdString(st.message()));
        out("backend: the local engine\n");
        return 0;
    }
    if (Status st = remote::checkEndpointUrl(url.toStdString()); !st) return cl.usageError(QString::fromStdString(st.message()));
    RemoteBackendSettings s;
    s.url = url;
    if (auto k = cl.text("api-key-file")) {
        const QFileInfo key(*k);
        if (!key.isFile() || !key.isReadable()) return fail("cannot read the API key file " + key.filePath());
        s.apiKeyFile = key.absoluteFilePath();
    }
    if (auto m = cl.text("model")) {
        s.model = *m;
    } else {
        // No model named: take the server's first, which also checks that it answers.
        auto endpoint = remoteEndpoint(s);
        if (!endpoint) return fail(QString::fromStdString(endpoint.status().message()));
        auto models = remote::listModels(endpoint.value());
        if (!models) return fail(QString::fromStdString(models.status().message()) + "\n(give --model NAME to set the backend without asking the server)");
        if (models->empty()) return fail(url + "/models lists no model; give --model NAME");
        s.model = QString::fromStdString(models->front());
    }
    if (s.model.isEmpty()) return fail("--model must not be empty");
    if (Status st = setRemoteBackend(*ctx.db, s); !st) return fail(QString::fromStdString(st.message()));
    out("backend: " + s.url + ", model " + s.model + (s.apiKeyFile.isEmpty() ? "" : ", API key from " + s.apiKeyFile) + "\n");
    return 0;
}

int askRemoteCommand(AppContext& ctx, const LibraryRow& library, const QString& question, const AskOptions& options, bool json,
                     const RemoteBackendSettings& backend) {
    auto endpoint = remoteEndpoint(backend);
    if (!endpoint) return fail(QString::fromStdString(endpoint.status().message()));
    AskOptions o = options;
    if (json) o.onText = {};
    QString partial;
    auto r = askRemote(*ctx.db, endpoint.value(), library, question, o, &partial);
    if (!r) {
        if (!json && !partial.isEmpty()) out("\n");
        return interruptedExit(fail(QString::fromStdString(r.status().message()) +
                                    (options.chatId ? QString("\nchat %1 is unchanged; ask again to retry").arg(options.chatId)
                                                    : QString("\nnothing was saved; ask again to retry"))));
    }
    if (json) {
        const QJsonObject j{{"chat", r->chatId}, {"answer", r->answer}, {"stop_reason", r->stopReason}, {"backend", backend.url},
                            {"model", backend.model}, {"prompt_tokens", r->promptTokens}, {"cached_tokens", r->cachedTokens},
                            {"completion_tokens", r->completionTokens}, {"first_token_seconds", r->firstTokenSeconds}};
        out(QString::fromUtf8(QJsonDocument(j).toJson(QJsonDocument::Compact)) + "\n");
    } else {
        out("\n");
        std::fprintf(stderr, "[chat %lld; answered by %s at %s; %lld prompt tokens, %lld of them cached by the server; first token %.2f s]\n",
                     static_cast<long long>(r->chatId), qPrintable(backend.model), qPrintable(backend.url),
                     static_cast<long long>(r->promptTokens), static_cast<long long>(r->cachedTokens), r->firstTokenSeconds);
    }
    return 0;
}

}  // namespace quire::cli
