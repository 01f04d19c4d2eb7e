// quire serve: the OpenAI-compatible HTTP server (app/server/). Every library is a model.
#include <QCoreApplication>
#include <QDir>
#include <QFile>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "app_context.h"
#include "cli_args.h"
#include "commands.h"
#include "engine_setup.h"
#include "server/api_server.h"

namespace quire::cli {

namespace {

std::atomic<bool> g_stopRequested{false};
extern "C" void onStopSignal(int) { g_stopRequested = true; }

bool isLoopback(const QString& host) {
    // 127.0.0.0/8, ::1 and the name for them.
    if (host == "localhost" || host == "::1") return true;
    const QStringList parts = host.split('.');
    if (parts.size() != 4 || parts[0] != "127") return false;
    for (const QString& part : parts) {
        bool ok = false;
        const int n = part.toInt(&ok);
        if (!ok || n < 0 || n > 255) return false;
    }
    return true;
}

}  // namespace

int serve_command(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("quire");
    CommandLine cl("quire serve", "Serve the model and every library (as model library/NAME) over an OpenAI-compatible HTTP API.");
    app::addDataDirOption(cl);
    addEngineOptions(cl);
    cl.addText("host", "ADDR", "Address to listen on (loopback only unless --api-key-file is given).", "127.0.0.1");
    cl.addInt("port", "N", "Port to listen on; 0 picks a free one (printed).", 0, 65535, 8080);
    cl.addText("api-key-file", "FILE", "File holding the API key clients must send (Authorization: Bearer KEY).");
    cl.addInt("queue", "N", "Requests that may wait behind the running one (then 429).", 1, 4096, 16);
    cl.addInt("max-body-bytes", "N", "Largest request body accepted (then 413).", 1024, int64_t(1) << 30, 8 << 20);
    cl.addInt("cached-states", "N", "Conversation states kept in memory for follow-ups.", 0, 1024, 8);
    cl.addInt("state-budget-mb", "MB", "Disk budget for saved library states.", 0, int64_t(1) << 30, 64 << 10);
    cl.addInt("chunk", "N", "Tokens per prefill step (cancel granularity).", 1, 1 << 20, 2048);
    cl.addInt("context-limit", "TOKENS", "Largest context a request may fill.", 1, int64_t(1) << 26, 1 << 20);
    cl.addText("request-log", "FILE", "Append every chat request body to this file, one per line.");
    cl.addInt("load-delay-ms", "MS", "Wait this long before loading the model (for testing the 503 answer).", 0, 600000, 0);
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;

    server::ServerOptions so;
    so.host = cl.text("host")->toStdString();
    so.port = static_cast<int>(*cl.integer("port"));
    so.queueCapacity = static_cast<size_t>(*cl.integer("queue"));
    so.maxBodyBytes = static_cast<size_t>(*cl.integer("max-body-bytes"));
    so.requestLog = cl.text("request-log").value_or(QString()).toStdString();
    if (auto keyFile = cl.text("api-key-file")) {
        QFile f(*keyFile);
        if (!f.open(QIODevice::ReadOnly)) return cl.usageError("cannot read the API key file " + f.fileName() + ": " + f.errorString());
        so.apiKey = QString::fromUtf8(f.read(4096)).trimmed().toStdString();
        if (so.apiKey.empty() || so.apiKey.find_first_of(" \t\r\n") != std::string::npos)
            return cl.usageError("the API key file " + f.fileName() + " must hold one key on one line");
    } else if (!isLoopback(*cl.text("host"))) {
        return cl.usageError("--host " + *cl.text("host") + " is not a loopback address: listening beyond this machine needs --api-key-file");
    }
    const auto delay = std::chrono::milliseconds(*cl.integer("load-delay-ms"));
    const auto cached = static_cast<size_t>(*cl.integer("cached-states"));

    auto ctx = app::openAppContext(cl);
    if (!ctx) return 1;
    app::SessionOptions sessionOptions;
    sessionOptions.stateDir = QDir(ctx->dataDir).filePath("states");
    sessionOptions.stateBudgetBytes = *cl.integer("state-budget-mb") << 20;
    sessionOptions.chunk = *cl.integer("chunk");
    sessionOptions.contextLimit = *cl.integer("context-limit");

    server::ApiServer api(so, *ctx, [&](std::string& error) -> std::unique_ptr<server::ChatRunner> {
        std::this_thread::sleep_for(delay);
        if (!app::loadEngine(*ctx, cl)) {
            error = "the model could not be loaded (see above)";
            return nullptr;
        }
        return std::make_unique<server::ChatRunner>(*ctx, sessionOptions, cached);
    });
    std::string error;
    if (!api.bind(error)) {
        std::fprintf(stderr, "quire serve: %s\n", error.c_str());
        return 1;
    }
    // An IPv6 address goes in brackets in a URL (http://[::1]:8080).
    const std::string host = so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host;
    std::printf("quire serve: listening on http://%s:%d (loading the model)\n", host.c_str(), api.port());
    std::fflush(stdout);
    std::signal(SIGINT, onStopSignal);
    std::signal(SIGTERM, onStopSignal);
    std::atomic<bool> done{false};
    std::thread watcher([&] {
        while (!done && !g_stopRequested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (g_stopRequested) api.stop();
    });
    const int code = api.run();
    done = true;
    watcher.join();
    return code;
}

}  // namespace quire::cli
