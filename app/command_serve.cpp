// quire serve: the OpenAI-compatible HTTP server (app/server/). Every library is a model.
#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFile>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "app_context.h"
#include "commands.h"
#include "server/api_server.h"

namespace quire::cli {

namespace {

std::atomic<bool> g_stopRequested{false};
extern "C" void onStopSignal(int) { g_stopRequested = true; }

int usageError(const QString& message) {
    std::fprintf(stderr, "quire serve: %s\n(see quire serve --help)\n", qPrintable(message));
    return 2;
}

// The value of a numeric option, checked against [lo, hi]; false (after printing why) otherwise.
bool numberOption(const QCommandLineParser& p, const QString& name, qint64 lo, qint64 hi, qint64& out) {
    if (!p.isSet(name)) return true;
    bool ok = false;
    const qint64 v = p.value(name).toLongLong(&ok);
    if (!ok || v < lo || v > hi) {
        usageError(QString("--%1 must be a whole number from %2 to %3, not '%4'").arg(name).arg(lo).arg(hi).arg(p.value(name)));
        return false;
    }
    out = v;
    return true;
}

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
    QCommandLineParser p;
    p.setApplicationDescription("Serve the model and every library as an OpenAI-compatible HTTP API.");
    p.addHelpOption();
    p.addPositionalArgument("serve", "the command");
    p.addOptions({
        {"host", "Address to listen on (loopback only unless --api-key-file is given).", "ADDR", "127.0.0.1"},
        {"port", "Port to listen on; 0 picks a free one (printed).", "N", "8080"},
        {"api-key-file", "File holding the API key clients must send (Authorization: Bearer KEY).", "FILE"},
        {"backend", "Engine backend: cpu or cuda.", "NAME"},
        {"gpu", "GPU number with --backend cuda.", "N"},
        {"threads", "CPU threads of the engine.", "N"},
        {"model", "Model folder (default: the configured model, else the bundled demo model).", "DIR"},
        {"data-dir", "Quire's data folder (the library).", "DIR"},
        {"queue", "Requests that may wait behind the running one (then 429).", "N", "16"},
        {"max-body-bytes", "Largest request body accepted (then 413).", "N", QString::number(8 << 20)},
        {"context-limit", "Context size in tokens.", "N"},
        {"chunk", "Prefill chunk in tokens.", "N"},
        {"state-budget-mb", "Disk budget for saved library states.", "MB"},
        {"cached-states", "Conversation states kept in memory for follow-ups.", "N", "8"},
        {"request-log", "Append every chat request body to this file, one per line.", "FILE"},
        {"load-delay-ms", "Wait this long before loading the model (for testing the 503 answer).", "MS", "0"},
    });
    QStringList arguments = app.arguments();
    if (!p.parse(arguments)) return usageError(p.errorText());
    if (p.isSet("help")) {
        std::printf("%s", qPrintable(p.helpText()));
        return 0;
    }
    if (p.positionalArguments().size() != 1) return usageError("unexpected arguments: " + p.positionalArguments().mid(1).join(' '));

    server::ServerOptions so;
    qint64 port = 8080, queue = 16, maxBody = 8 << 20, cached = 8, delay = 0, gpu = 0, threads = 0, contextLimit = 0, chunk = 0,
           budget = 0;
    if (!numberOption(p, "port", 0, 65535, port) || !numberOption(p, "queue", 1, 4096, queue) ||
        !numberOption(p, "max-body-bytes", 1024, 1LL << 30, maxBody) || !numberOption(p, "cached-states", 0, 1024, cached) ||
        !numberOption(p, "load-delay-ms", 0, 600000, delay) || !numberOption(p, "gpu", 0, 1024, gpu) ||
        !numberOption(p, "threads", 1, 4096, threads) || !numberOption(p, "context-limit", 256, 1LL << 22, contextLimit) ||
        !numberOption(p, "chunk", 1, 1 << 20, chunk) || !numberOption(p, "state-budget-mb", 1, 1LL << 30, budget))
        return 2;
    if (p.isSet("backend") && p.value("backend") != "cpu" && p.value("backend") != "cuda")
        return usageError("--backend must be cpu or cuda, not '" + p.value("backend") + "'");
    so.host = p.value("host").toStdString();
    so.port = static_cast<int>(port);
    so.queueCapacity = static_cast<size_t>(queue);
    so.maxBodyBytes = static_cast<size_t>(maxBody);
    so.requestLog = p.value("request-log").toStdString();
    if (p.isSet("api-key-file")) {
        QFile f(p.value("api-key-file"));
        if (!f.open(QIODevice::ReadOnly)) return usageError("cannot read the API key file " + f.fileName() + ": " + f.errorString());
        so.apiKey = QString::fromUtf8(f.read(4096)).trimmed().toStdString();
        if (so.apiKey.empty() || so.apiKey.find_first_of(" \t\r\n") != std::string::npos)
            return usageError("the API key file " + f.fileName() + " must hold one key on one line");
    } else if (!isLoopback(p.value("host"))) {
        return usageError("--host " + p.value("host") + " is not a loopback address: listening beyond this machine needs --api-key-file");
    }

    // The shared library/engine setup reads these options in their plain form.
    std::vector<std::string> shared = {"quire", "serve"};
    for (const char* name : {"backend", "gpu", "threads", "model", "data-dir"})
        if (p.isSet(name)) {
            shared.push_back(std::string("--") + name);
            shared.push_back(p.value(name).toStdString());
        }
    std::vector<char*> sharedArgv;
    for (std::string& s : shared) sharedArgv.push_back(s.data());
    const Args args(static_cast<int>(sharedArgv.size()), sharedArgv.data(), 2, {});
    auto ctx = app::openAppContext(args);
    if (!ctx) return 1;
    app::SessionOptions sessionOptions;
    sessionOptions.stateDir = QDir(ctx->dataDir).filePath("states");
    if (budget) sessionOptions.stateBudgetBytes = budget << 20;
    if (chunk) sessionOptions.chunk = chunk;
    if (contextLimit) sessionOptions.contextLimit = contextLimit;

    server::ApiServer api(so, *ctx, [&](std::string& error) -> std::unique_ptr<server::ChatRunner> {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        if (!app::loadEngine(*ctx, args)) {
            error = "the model could not be loaded (see above)";
            return nullptr;
        }
        return std::make_unique<server::ChatRunner>(*ctx, sessionOptions, static_cast<size_t>(cached));
    });
    std::string error;
    if (!api.bind(error)) {
        std::fprintf(stderr, "quire serve: %s\n", error.c_str());
        return 1;
    }
    std::printf("quire serve: listening on http://%s:%d (loading the model)\n", so.host.c_str(), api.port());
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
