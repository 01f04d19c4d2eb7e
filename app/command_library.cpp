// The library subcommands: library create|list|show, add, remove, ask, chats, export, config.
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include <cstdio>

#include "app_context.h"
#include "cli_args.h"
#include "command_remote.h"
#include "commands.h"
#include "ingest/library_ingest.h"
#include "model_info.h"
#include "session/chat_export.h"
#include "session/session_service.h"

namespace quire::cli {

using namespace quire::app;

namespace {

void out(const QString& s) {
    const QByteArray b = s.toUtf8();
    std::fwrite(b.constData(), 1, static_cast<size_t>(b.size()), stdout);
    std::fflush(stdout);
}
int fail(const QString& s) {
    std::fprintf(stderr, "quire: %s\n", qPrintable(s));
    return 1;
}
int usage() {
    std::fprintf(stderr,
                 "usage:\n"
                 "  quire library create NAME [--system TEXT]\n"
                 "  quire library list\n"
                 "  quire library show NAME\n"
                 "  quire add NAME PATH... [--password P] [--exclude PATTERN] [--no-default-excludes] [--max-file-size BYTES]\n"
                 "  quire remove NAME SOURCE\n"
                 "  quire ask NAME QUESTION [--chat ID | --new-chat] [--json] [--no-think] [--max-tokens N] [--temperature T]\n"
                 "  quire chats NAME\n"
                 "  quire export NAME CHAT --markdown\n"
                 "  quire config model DIR\n"
                 "  quire config backend URL [--model NAME] [--api-key-file F] | quire config backend local\n"
                 "common options: --data-dir DIR, --model DIR, --backend cpu|cuda, --gpu N, --threads N\n");
    return 2;
}

std::optional<LibraryRow> findLibrary(AppContext& ctx, const QString& name) {
    auto lib = ctx.db->library(name);
    if (!lib) {
        fail(QString::fromStdString(lib.status().message()));
        return std::nullopt;
    }
    if (!lib.value()) fail("no library named '" + name + "' (create it with `quire library create " + name + "`)");
    return lib.value();
}

SessionOptions sessionOptions(const AppContext& ctx, const Args& args) {
    SessionOptions o;
    o.stateDir = QDir(ctx.dataDir).filePath("states");
    if (auto b = args.value("--state-budget-mb")) o.stateBudgetBytes = std::stoll(*b) << 20;
    if (auto c = args.value("--chunk")) o.chunk = std::stoll(*c);
    if (auto l = args.value("--context-limit")) o.contextLimit = std::stoll(*l);
    return o;
}

void printProgress(const ReadProgress& p) {
    std::fprintf(stderr, "\rreading: %lld / %lld tokens (%.0f%%), %.0f tokens/s, ETA %.0f s   ", static_cast<long long>(p.done),
                 static_cast<long long>(p.total), p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0,
                 p.tokensPerSecond, p.etaSeconds);
    if (p.done == p.total) std::fprintf(stderr, "\n");
}

int libraryCommand(AppContext& ctx, const Args& args) {
    const auto& pos = args.positional();
    if (pos.size() < 2) return usage();
    const QString verb = QString::fromStdString(pos[1]);
    if (verb == "create" && pos.size() == 3) {
        const QString system = QString::fromStdString(args.value("--system").value_or(""));
        auto id = ctx.db->createLibrary(QString::fromStdString(pos[2]), system);
        if (!id) return fail(QString::fromStdString(id.status().message()));
        out(QString("created library '%1'\n").arg(QString::fromStdString(pos[2])));
        return 0;
    }
    if (verb == "list") {
        auto libs = ctx.db->libraries();
        if (!libs) return fail(QString::fromStdString(libs.status().message()));
        for (const LibraryRow& l : libs.value()) {
            auto sources = ctx.db->sources(l.id);
            out(QString("%1\t%2 sources\n").arg(l.name).arg(sources ? sources->size() : 0));
        }
        return 0;
    }
    if (verb == "show" && pos.size() == 3) {
        auto lib = findLibrary(ctx, QString::fromStdString(pos[2]));
        if (!lib) return 1;
        if (!loadEngine(ctx, args)) return 1;
        SessionService session(*ctx.db, *ctx.engine, sessionOptions(ctx, args));
        auto assembled = session.assemble(*lib);  // refreshes token counts
        auto sources = ctx.db->sources(lib->id);
        if (!sources) return fail(QString::fromStdString(sources.status().message()));
        out(QString("library '%1': %2 sources\n").arg(lib->name).arg(sources->size()));
        for (const SourceRow& s : sources.value()) {
            const QString units = s.kind == "pdf" ? QString("%1 pages").arg(s.units) : s.kind == "code" ? QString("%1 files").arg(s.units) : "1 file";
            out(QString("  [%1] %2  %3, %4, %5 tokens, %6%7\n").arg(s.id).arg(s.path, s.kind, units).arg(s.tokenCount).arg(s.status,
                                                                                                                        s.error.isEmpty() ? "" : ": " + s.error));
            if (!s.skipped.isEmpty()) out(QString("      skipped %1 file(s)\n").arg(s.skipped.count('\n')));
        }
        if (assembled) out(QString("context: %1 tokens of %2\n").arg(assembled->tokens.size()).arg(sessionOptions(ctx, args).contextLimit));
        else out("context: " + QString::fromStdString(assembled.status().message()) + "\n");
        auto states = ctx.db->prefixStates(lib->id);
        if (states && !states->isEmpty())
            out(QString("saved prefix state: %1 tokens, %2 MB\n").arg(states->first().tokenCount).arg(double(states->first().bytes) / 1e6, 0, 'f', 1));
        else out("saved prefix state: none (the library has not been read yet)\n");
        return 0;
    }
    return usage();
}

int addCommand(AppContext& ctx, const Args& args) {
    const auto& pos = args.positional();
    if (pos.size() < 3) return usage();
    auto lib = findLibrary(ctx, QString::fromStdString(pos[1]));
    if (!lib) return 1;
    IngestOptions o;
    o.helperProgram = QCoreApplication::applicationFilePath();
    o.password = QString::fromStdString(args.value("--password").value_or(""));
    o.code.defaultExcludes = !args.flag("--no-default-excludes");
    if (auto e = args.value("--exclude")) o.code.extraExcludes = QString::fromStdString(*e).split(',', Qt::SkipEmptyParts);
    if (auto m = args.value("--max-file-size")) o.code.maxFileBytes = std::stoll(*m);
    int failures = 0;
    for (size_t i = 2; i < pos.size(); ++i) {
        const AddedSource added = addSourceToLibrary(*ctx.db, lib->id, QString::fromStdString(pos[i]), o);
        const IngestedSource& s = added.source;
        if (!added.stored) {
            std::fprintf(stderr, "quire: %s: %s\n", qPrintable(s.path), added.stored.message().c_str());
            ++failures;
            continue;
        }
        // Printed only after the transaction committed: "added" means it is in the library.
        if (s.status == "ready") {
            out(QString("added: %1 (%2, %3 %4)\n").arg(s.path, s.kind).arg(s.units).arg(s.kind == "pdf" ? "pages" : "files"));
            if (!s.skipped.isEmpty()) out("  skipped:\n    " + s.skipped.trimmed().replace("\n", "\n    ") + "\n");
        } else {
            out(QString("%1: %2: %3\n").arg(s.status == "needs password" ? "needs password" : "failed", s.path, s.error));
            ++failures;
        }
    }
    return failures ? 1 : 0;
}

int removeCommand(AppContext& ctx, const Args& args) {
    const auto& pos = args.positional();
    if (pos.size() != 3) return usage();
    auto lib = findLibrary(ctx, QString::fromStdString(pos[1]));
    if (!lib) return 1;
    auto sources = ctx.db->sources(lib->id);
    if (!sources) return fail(QString::fromStdString(sources.status().message()));
    const QString which = QString::fromStdString(pos[2]);
    for (const SourceRow& s : sources.value())
        if (QString::number(s.id) == which || s.path == which || s.path == QFileInfo(which).absoluteFilePath()) {
            if (Status st = ctx.db->removeSource(s.id); !st) return fail(QString::fromStdString(st.message()));
            out("removed: " + s.path + "\n");
            return 0;
        }
    return fail("library '" + lib->name + "' has no source " + which);
}

int askCommand(AppContext& ctx, const Args& args) {
    const auto& pos = args.positional();
    if (pos.size() != 3) return usage();
    auto lib = findLibrary(ctx, QString::fromStdString(pos[1]));
    if (!lib) return 1;
    const bool json = args.flag("--json");
    AskOptions o;
    if (auto c = args.value("--chat")) o.chatId = std::stoll(*c);
    o.thinking = !args.flag("--no-think");
    o.generation.max_tokens = std::stoll(args.value("--max-tokens").value_or("512"));
    o.generation.sampling.temperature = std::stof(args.value("--temperature").value_or("0"));
    o.generation.sampling.top_p = std::stof(args.value("--top-p").value_or("1"));
    o.generation.sampling.seed = std::stoull(args.value("--seed").value_or("0"));
    o.onProgress = printProgress;
    if (!json) o.onText = [](const QString& d) { out(d); };
    auto remote = remoteBackend(*ctx.db);
    if (!remote) return fail(QString::fromStdString(remote.status().message()));
    if (remote.value()) return askRemoteCommand(ctx, *lib, QString::fromStdString(pos[2]), o, json, *remote.value());
    if (!loadEngine(ctx, args)) return 1;
    SessionService session(*ctx.db, *ctx.engine, sessionOptions(ctx, args));
    auto r = session.ask(*lib, QString::fromStdString(pos[2]), o);
    if (!r) return fail(QString::fromStdString(r.status().message()));
    for (const QString& n : r->notices) std::fprintf(stderr, "note: %s\n", qPrintable(n));
    if (json) {
        QJsonObject j{{"chat", r->chatId}, {"answer", r->answer}, {"stop_reason", r->stopReason},
                      {"context_tokens", r->contextTokens}, {"question_tokens", r->questionTokens},
                      {"prefilled_tokens", r->prefilledTokens}, {"reused_state", r->reusedState},
                      {"first_token_seconds", r->firstTokenSeconds}, {"tokens_per_second", r->tokensPerSecond},
                      {"notices", QJsonArray::fromStringList(r->notices)}, {"model", ctx.modelDir}, {"demo_model", ctx.demoModel}};
        out(QString::fromUtf8(QJsonDocument(j).toJson(QJsonDocument::Compact)) + "\n");
    } else {
        out("\n");
        std::fprintf(stderr, "[chat %lld; %lld context tokens (%s), %lld computed for this answer; first token %.2f s, %.1f tokens/s]\n",
                     static_cast<long long>(r->chatId), static_cast<long long>(r->contextTokens),
                     r->reusedState ? "saved state reused" : "read now", static_cast<long long>(r->prefilledTokens),
                     r->firstTokenSeconds, r->tokensPerSecond);
    }
    return 0;
}

int chatsCommand(AppContext& ctx, const Args& args) {
    if (args.positional().size() != 2) return usage();
    auto lib = findLibrary(ctx, QString::fromStdString(args.positional()[1]));
    if (!lib) return 1;
    auto chats = ctx.db->chats(lib->id);
    if (!chats) return fail(QString::fromStdString(chats.status().message()));
    for (const ChatRow& c : chats.value()) {
        auto m = ctx.db->messages(c.id);
        out(QString("%1\t%2\t%3 messages\t%4\n").arg(c.id).arg(c.created).arg(m ? m->size() : 0).arg(c.title));
    }
    return 0;
}

int exportCommand(AppContext& ctx, const Args& args) {
    const auto& pos = args.positional();
    if (pos.size() != 3 || !args.flag("--markdown")) return usage();
    auto lib = findLibrary(ctx, QString::fromStdString(pos[1]));
    if (!lib) return 1;
    auto chat = ctx.db->chat(QString::fromStdString(pos[2]).toLongLong());
    if (!chat || !chat.value() || chat.value()->libraryId != lib->id) return fail("library '" + lib->name + "' has no chat " + QString::fromStdString(pos[2]));
    auto messages = ctx.db->messages(chat.value()->id);
    if (!messages) return fail(QString::fromStdString(messages.status().message()));
    out(chatMarkdown(*lib, *chat.value(), messages.value()));
    return 0;
}

int configCommand(AppContext& ctx, const Args& args) {
    const auto& pos = args.positional();
    if (pos.size() == 3 && pos[1] == "model") {
        const ModelReport report = inspect_model(pos[2]);
        if (!report.ok()) return fail("not a usable model folder:\n" + QString::fromStdString(format_model_report(report)));
        if (Status st = ctx.db->setSetting("model", QFileInfo(QString::fromStdString(pos[2])).absoluteFilePath()); !st)
            return fail(QString::fromStdString(st.message()));
        out("default model: " + QString::fromStdString(pos[2]) + "\n");
        return 0;
    }
    if (pos.size() >= 2 && pos[1] == "backend") return configBackendCommand(ctx, args);
    return usage();
}

}  // namespace

int library_command(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("quire");
    Args args(argc, argv, 1, {"--json", "--no-think", "--new-chat", "--markdown", "--no-default-excludes"});
    if (!args.ok() || args.positional().empty()) return usage();
    auto ctx = openAppContext(args);
    if (!ctx) return 1;
    const std::string cmd = args.positional()[0];
    if (cmd == "library") return libraryCommand(*ctx, args);
    if (cmd == "add") return addCommand(*ctx, args);
    if (cmd == "remove") return removeCommand(*ctx, args);
    if (cmd == "ask") return askCommand(*ctx, args);
    if (cmd == "chats") return chatsCommand(*ctx, args);
    if (cmd == "export") return exportCommand(*ctx, args);
    if (cmd == "config") return configCommand(*ctx, args);
    return usage();
}

}  // namespace quire::cli
