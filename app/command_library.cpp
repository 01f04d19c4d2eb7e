// The library subcommands: library create|list|show, add, remove, ask, chats, export, config.
#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

#include "app_context.h"
#include "cli_args.h"
#include "cli_output.h"
#include "command_remote.h"
#include "commands.h"
#include "interrupt.h"
#include "engine_setup.h"
#include "ingest/add_admission.h"
#include "ingest/library_ingest.h"
#include "library/add_lock.h"
#include "library/library_removal.h"
#include "model_config.h"
#include "model_info.h"
#include "tokenizer.h"
#include "session/chat_export.h"
#include "session/citations.h"
#include "session/context_builder.h"
#include "session/session_service.h"

namespace quire::cli {

using namespace quire::app;

namespace {

const char* kUsage =
    "usage:\n"
    "  quire library create NAME [--system TEXT]\n"
    "  quire library list\n"
    "  quire library show NAME\n"
    "  quire library rename NAME NEW-NAME\n"
    "  quire library delete NAME\n"
    "  quire add NAME PATH... [--password P] [--exclude PATTERN] [--no-default-excludes] [--max-file-size BYTES]\n"
    "  quire remove NAME SOURCE\n"
    "  quire ask NAME QUESTION [--chat ID | --new-chat] [--json] [--no-think] [--max-tokens N] [--temperature T]\n"
    "  quire chats NAME [--delete ID]\n"
    "  quire export NAME CHAT --markdown\n"
    "  quire config model DIR\n"
    "  quire config backend URL [--model NAME] [--api-key-file F] | quire config backend local\n"
    "common options: --data-dir DIR; `quire COMMAND --help` lists a command's options\n";

std::optional<LibraryRow> findLibrary(AppContext& ctx, const QString& name) {
    auto lib = ctx.db->library(name);
    if (!lib) {
        fail(QString::fromStdString(lib.status().message()));
        return std::nullopt;
    }
    if (!lib.value()) fail("no library named '" + name + "' (create it with `quire library create " + name + "`)");
    return lib.value();
}

// Options of the commands that read a library with the engine (show, ask).
void addSessionOptions(CommandLine& cl) {
    addEngineOptions(cl);
    cl.addInt("state-budget-mb", "MB", "Disk budget for saved library states.", 0, int64_t(1) << 30, 64 << 10);
    cl.addInt("chunk", "N", "Tokens per reading step (progress and cancel granularity).", 1, 1 << 20, 2048);
    cl.addInt("context-limit", "TOKENS", "Largest context the library may fill.", 1, int64_t(1) << 26, 1 << 20);
}

SessionOptions sessionOptions(const AppContext& ctx, const CommandLine& cl) {
    SessionOptions o;
    o.stateDir = QDir(ctx.dataDir).filePath("states");
    o.stateBudgetBytes = *cl.integer("state-budget-mb") << 20;
    o.chunk = *cl.integer("chunk");
    o.contextLimit = *cl.integer("context-limit");
    return o;
}

void printProgress(const ReadProgress& p) {
    // Tenths of a second in the last ten, where whole seconds would be tens of percent off.
    std::fprintf(stderr, "\rreading: %lld / %lld tokens (%.0f%%), %.0f tokens/s, ETA %.*f s   ", static_cast<long long>(p.done),
                 static_cast<long long>(p.total), p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0,
                 p.tokensPerSecond, p.etaSeconds < 9.95 ? 1 : 0, p.etaSeconds);
    if (p.done == p.total) std::fprintf(stderr, "\n");
}

// The answer's citations that resolve against the library's sources (see citations.h).
QJsonArray citationsJson(LibraryDb& db, qint64 libraryId, const QString& answer) {
    auto index = CitationIndex::forLibrary(db, libraryId);
    return index ? citationsToJson(index->find(answer)) : QJsonArray();
}

int createCommand(AppContext& ctx, const CommandLine& cl) {
    const QString name = cl.positional()[0];
    auto id = ctx.db->createLibrary(name, *cl.text("system"));
    if (!id) return fail(QString::fromStdString(id.status().message()));
    out(QString("created library '%1'\n").arg(name));
    return 0;
}

int listCommand(AppContext& ctx, const CommandLine&) {
    auto libs = ctx.db->libraries();
    if (!libs) return fail(QString::fromStdString(libs.status().message()));
    for (const LibraryRow& l : libs.value()) {
        auto sources = ctx.db->sources(l.id);
        out(QString("%1\t%2 sources\n").arg(l.name).arg(sources ? sources->size() : 0));
    }
    return 0;
}

int showCommand(AppContext& ctx, const CommandLine& cl) {
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    if (!loadEngine(ctx, cl)) return 1;
    SessionService session(*ctx.db, *ctx.engine, sessionOptions(ctx, cl));
    auto assembled = session.assemble(*lib);  // refreshes token counts
    auto sources = ctx.db->sources(lib->id);
    if (!sources) return fail(QString::fromStdString(sources.status().message()));
    out(QString("library '%1': %2 sources\n").arg(lib->name).arg(sources->size()));
    // Each source's tokens as the context counts them, also when the library is over the limit (the
    // counts stored by a question are missing then: none could be asked).
    QHash<qint64, qint64> counted;
    auto count = [&](const AssembledContext& c) {
        for (const ContextPiece& p : c.pieces)
            if (p.sourceId) counted[p.sourceId] = p.tokens;
    };
    if (assembled) count(assembled.value());
    else if (auto measured = session.measure(*lib)) count(measured.value());
    for (const SourceRow& s : sources.value()) {
        const QString units = s.kind == "pdf" ? QString("%1 pages").arg(s.units) : s.kind == "code" ? QString("%1 files").arg(s.units) : "1 file";
        out(QString("  [%1] %2  %3, %4, %5 tokens, %6%7\n").arg(s.id).arg(s.path, s.kind, units).arg(counted.value(s.id, s.tokenCount)).arg(s.status,
                                                                                                                    s.error.isEmpty() ? "" : ": " + s.error));
        if (!s.skipped.isEmpty()) out(QString("      skipped %1 file(s)\n").arg(s.skipped.count('\n')));
    }
    if (assembled) out(QString("context: %1 tokens of %2\n").arg(assembled->tokens.size()).arg(*cl.integer("context-limit")));
    else out("context: " + QString::fromStdString(assembled.status().message()) + "\n");
    // The state the next question would start from (the largest saved one may be of an older version
    // of the library: after a remove it no longer fits).
    auto states = ctx.db->prefixStates(lib->id);
    const auto usable = assembled ? session.usableState(*lib, assembled->tokens) : Result<std::optional<PrefixStateRow>>(std::nullopt);
    const auto size = assembled ? static_cast<qint64>(assembled->tokens.size()) : 0;
    auto mb = [](qint64 bytes) { return QString::number(double(bytes) / 1e6, 'f', 1); };
    if (usable && usable.value() && usable.value()->tokenCount == size)
        out(QString("saved prefix state: %1 tokens, %2 MB (the whole library)\n").arg(size).arg(mb(usable.value()->bytes)));
    else if (usable && usable.value())
        out(QString("saved prefix state: %1 of the %2 tokens, %3 MB (the next question reads the other %4 first)\n")
                .arg(usable.value()->tokenCount).arg(size).arg(mb(usable.value()->bytes)).arg(size - usable.value()->tokenCount));
    else if (states && !states->isEmpty())
        out(QString("saved prefix state: none usable for the library as it is now (%1 saved for earlier versions, other models, or "
                    "changed on disk since; the next question reads the library)\n").arg(states->size()));
    else out("saved prefix state: none (the library has not been read yet)\n");
    return 0;
}

// The tokenizer of the model the library answers with (--model, the configured one, or the demo
// model), to tell whether a source fits the context; nullopt when there is none.
std::optional<Tokenizer> answerTokenizer(AppContext& ctx, const CommandLine& cl) {
    QString dir = cl.text("model").value_or(QString());
    if (dir.isEmpty())
        if (auto s = ctx.db->setting("model"); s) dir = s.value();
    if (dir.isEmpty()) dir = demoModelDir();
    auto config = load_model_config((dir + "/config.json").toStdString());
    if (!config) return std::nullopt;
    auto tok = Tokenizer::load(dir.toStdString(), config->vocab_size);
    if (!tok) return std::nullopt;
    return std::move(tok.value());
}

int addCommand(AppContext& ctx, const CommandLine& cl) {
    const QStringList& pos = cl.positional();
    auto lib = findLibrary(ctx, pos[0]);
    if (!lib) return 1;
    IngestOptions o;
    o.helperProgram = QCoreApplication::applicationFilePath();
    o.password = *cl.text("password");
    o.code.defaultExcludes = !cl.flag("no-default-excludes");
    for (const QString& e : cl.texts("exclude")) o.code.extraExcludes << e.split(',', Qt::SkipEmptyParts);
    o.code.maxFileBytes = *cl.integer("max-file-size");
    if (ctx.db->readOnly())  // refused before the work (and before the lock, whose file could not be made)
        return fail(ctx.db->path() + " is " + ctx.db->readOnlyReason() + ": Quire can read this library but not change it");
    int failures = 0;
    // Two adds to one library at once would each count the library without the other's sources, and
    // together pass the context limit: the second waits for the first.
    auto lock = AddLock::acquire(ctx.dataDir, lib->id, lib->name);
    if (!lock) return fail(QString::fromStdString(lock.status().message()));
    // The library may have been deleted, renamed or given another system prompt while this add waited.
    auto now = ctx.db->library(lib->id);
    if (!now) return fail(QString::fromStdString(now.status().message()));
    if (!now.value()) return fail("library '" + lib->name + "' was deleted while this add waited; nothing was added");
    lib = *now.value();
    const std::optional<Tokenizer> tok = answerTokenizer(ctx, cl);
    const SessionOptions limits = sessionOptions(ctx, cl);
    AddAdmission admission(*ctx.db, *lib, tok ? &*tok : nullptr, limits.contextLimit, limits.conversationReserve);
    for (qsizetype i = 1; i < pos.size(); ++i) {
        const AddedSource added =
            addSourceToLibrary(*ctx.db, lib->id, pos[i], o, [&](const IngestedSource& s) { return admission.admit(s); });
        const IngestedSource& s = added.source;
        if (!added.stored) {
            if (added.stored.code() == ErrorCode::out_of_range) std::fprintf(stderr, "quire: %s\n", added.stored.message().c_str());
            else std::fprintf(stderr, "quire: %s: %s\n", qPrintable(s.path), added.stored.message().c_str());
            ++failures;
            continue;
        }
        admission.stored(added.id, s);
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

int removeCommand(AppContext& ctx, const CommandLine& cl) {
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    auto sources = ctx.db->sources(lib->id);
    if (!sources) return fail(QString::fromStdString(sources.status().message()));
    const QString which = cl.positional()[1];
    for (const SourceRow& s : sources.value())
        if (QString::number(s.id) == which || s.path == which || s.path == QDir::cleanPath(QFileInfo(which).absoluteFilePath())) {
            if (Status st = ctx.db->removeSource(s.id); !st) return fail(QString::fromStdString(st.message()));
            out("removed: " + s.path + "\n");
            return 0;
        }
    return fail("library '" + lib->name + "' has no source " + which);
}

int askCommand(AppContext& ctx, const CommandLine& cl) {
    if (cl.isSet("chat") && cl.flag("new-chat")) return cl.usageError("--chat and --new-chat exclude each other");
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    const bool json = cl.flag("json");
    AskOptions o;
    o.chatId = cl.integer("chat").value_or(0);
    o.thinking = !cl.flag("no-think");
    o.generation.max_tokens = *cl.integer("max-tokens");
    o.generation.sampling.temperature = static_cast<float>(*cl.real("temperature"));
    o.generation.sampling.top_p = static_cast<float>(*cl.real("top-p"));
    o.generation.sampling.seed = static_cast<uint64_t>(*cl.integer("seed"));
    o.onProgress = printProgress;
    if (!json) o.onText = [](const QString& d) { out(d); };
    o.onStatus = [](const QString& s) { std::fprintf(stderr, "\n[%s]\n", qPrintable(s)); };
    // Ctrl-C while reading stops at the next chunk (nothing is saved: the next question reads the
    // library again); while answering it ends the answer there, and the answer so far is saved,
    // marked stopped.
    catchInterrupts();
    o.cancel = interruptFlag();
    auto remote = remoteBackend(*ctx.db);
    if (!remote) return fail(QString::fromStdString(remote.status().message()));
    if (remote.value()) return askRemoteCommand(ctx, *lib, cl.positional()[1], o, json, *remote.value());
    QElapsedTimer sinceCommand;  // the first token's time as the user waits for it: loading the model included
    sinceCommand.start();
    if (!loadEngine(ctx, cl)) return 1;
    SessionService session(*ctx.db, *ctx.engine, sessionOptions(ctx, cl));
    const double beforeAsk = static_cast<double>(sinceCommand.nsecsElapsed()) * 1e-9;
    auto r = session.ask(*lib, cl.positional()[1], o);
    if (!r) {
        return interruptedExit(fail(QString::fromStdString(r.status().message())));
    }
    for (const QString& n : r->notices) std::fprintf(stderr, "note: %s\n", qPrintable(n));
    if (json) {
        QJsonObject j{{"chat", r->chatId}, {"answer", r->answer}, {"stop_reason", r->stopReason},
                      {"context_tokens", r->contextTokens}, {"question_tokens", r->questionTokens},
                      {"prefilled_tokens", r->prefilledTokens}, {"reused_state", r->reusedState},
                      {"first_token_seconds", r->firstTokenSeconds}, {"tokens_per_second", r->tokensPerSecond},
                      {"notices", QJsonArray::fromStringList(r->notices)}, {"model", ctx.modelDir}, {"demo_model", ctx.demoModel},
                      {"citations", citationsJson(*ctx.db, lib->id, r->answer)}};
        out(QString::fromUtf8(QJsonDocument(j).toJson(QJsonDocument::Compact)) + "\n");
    } else {
        out("\n");
        std::fprintf(stderr,
                     "[chat %lld; %lld context tokens (%s), %lld computed for this answer; first token %.2f s after the question "
                     "(%.2f s after the command), %.1f tokens/s]\n",
                     static_cast<long long>(r->chatId), static_cast<long long>(r->contextTokens),
                     r->reusedState ? "saved state reused" : "read now", static_cast<long long>(r->prefilledTokens),
                     r->firstTokenSeconds, beforeAsk + r->secondsBeforeAnswer + r->firstTokenSeconds, r->tokensPerSecond);
    }
    if (interruptSignal()) {
        // The signal may have come after the last token, while the library's state was saved: then the
        // answer is whole and recorded as such.
        if (r->stopReason == "cancelled")
            std::fprintf(stderr, "[stopped: the answer so far is saved in chat %lld, marked stopped]\n", static_cast<long long>(r->chatId));
        else
            std::fprintf(stderr, "[interrupted after the answer was complete: it is saved in chat %lld]\n", static_cast<long long>(r->chatId));
        return interruptedExit(0);
    }
    return 0;
}

void reportRemoval(const Removal& r) {
    for (const QString& f : r.removedFiles) out("  removed " + f + "\n");
    for (const QString& f : r.leftFiles) std::fprintf(stderr, "quire: could not remove %s\n", qPrintable(f));
}

int renameCommand(AppContext& ctx, const CommandLine& cl) {
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    if (Status st = ctx.db->renameLibrary(lib->id, cl.positional()[1], lib->name); !st) return fail(QString::fromStdString(st.message()));
    out(QString("renamed library '%1' to '%2'\n").arg(lib->name, cl.positional()[1].trimmed()));
    return 0;
}

int deleteCommand(AppContext& ctx, const CommandLine& cl) {
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    auto removed = deleteLibraryWithStates(*ctx.db, lib->id);
    if (!removed) return fail(QString::fromStdString(removed.status().message()));
    out(QString("deleted library '%1' (its sources, chats and saved states)\n").arg(lib->name));
    reportRemoval(removed.value());
    return removed->leftFiles.isEmpty() ? 0 : 1;
}

int chatsCommand(AppContext& ctx, const CommandLine& cl) {
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    if (const auto id = cl.integer("delete")) {
        auto chat = ctx.db->chat(*id);
        if (!chat || !chat.value() || chat.value()->libraryId != lib->id) return fail(QString("library '%1' has no chat %2").arg(lib->name).arg(*id));
        auto removed = deleteChatWithState(*ctx.db, *id);
        if (!removed) return fail(QString::fromStdString(removed.status().message()));
        out(QString("deleted chat %1 (%2)\n").arg(*id).arg(chat.value()->title));
        reportRemoval(removed.value());
        return removed->leftFiles.isEmpty() ? 0 : 1;
    }
    auto chats = ctx.db->chats(lib->id);
    if (!chats) return fail(QString::fromStdString(chats.status().message()));
    for (const ChatRow& c : chats.value()) {
        auto m = ctx.db->messages(c.id);
        out(QString("%1\t%2\t%3 messages\t%4\n").arg(c.id).arg(c.created).arg(m ? m->size() : 0).arg(c.title));
    }
    return 0;
}

int exportCommand(AppContext& ctx, const CommandLine& cl) {
    if (!cl.flag("markdown")) return cl.usageError("say the format: --markdown (the only one so far)");
    auto lib = findLibrary(ctx, cl.positional()[0]);
    if (!lib) return 1;
    // The chat's number, a strict whole number from 1 and without leading zeros (" 1", "+1" and "01"
    // were read as 1).
    const QString text = cl.positional()[1];
    const std::optional<int64_t> number = text.startsWith('0') ? std::nullopt : parseInteger(text);
    const qint64 chatId = number.value_or(0);
    if (chatId < 1) return cl.usageError("CHAT must be a chat's number, a whole number from 1 to 9223372036854775807, not '" + text + "'");
    auto chat = ctx.db->chat(chatId);
    if (!chat) return fail(QString::fromStdString(chat.status().message()));
    if (!chat.value() || chat.value()->libraryId != lib->id) return fail("library '" + lib->name + "' has no chat " + cl.positional()[1]);
    auto messages = ctx.db->messages(chat.value()->id);
    if (!messages) return fail(QString::fromStdString(messages.status().message()));
    out(chatMarkdown(*lib, *chat.value(), messages.value()));
    return 0;
}

int configCommand(AppContext& ctx, const CommandLine& cl) {
    const QStringList& pos = cl.positional();
    if (pos[0] == "backend") return configBackendCommand(ctx, cl);
    if (pos[0] != "model") return cl.usageError("unknown setting '" + pos[0] + "' (settings: model, backend)");
    const ModelReport report = inspect_model(pos[1].toStdString());
    if (!report.ok()) return fail("not a usable model folder:\n" + QString::fromStdString(format_model_report(report)));
    if (Status st = ctx.db->setSetting("model", QFileInfo(pos[1]).absoluteFilePath()); !st) return fail(QString::fromStdString(st.message()));
    out("default model: " + pos[1] + "\n");
    return 0;
}

// Each library subcommand: its name after `quire`, what it does, its options, and its body.
struct Subcommand {
    const char* name;
    const char* description;
    void (*declare)(CommandLine&);
    int (*run)(AppContext&, const CommandLine&);
    bool createsLibrary = false;  // may run on a data folder that holds no library yet (it creates one)
};

const Subcommand kSubcommands[] = {
    {"library create", "Create an empty library.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The new library's name.");
         cl.addText("system", "TEXT", "The system prompt (a default one otherwise).", "");
     },
     createCommand, true},
    {"library list", "List the libraries.", [](CommandLine&) {}, listCommand},
    {"library show", "Show a library's sources, context size and saved state.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         addSessionOptions(cl);
     },
     showCommand},
    {"add", "Add PDFs, source folders or text files to a library.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         cl.addPositional("PATH", "A PDF, a folder of code or a text file.", false, true);
         cl.addText("password", "P", "Password of encrypted PDFs.", "");
         cl.addRepeatableText("exclude", "PATTERNS", "More gitignore-style patterns to leave out (comma-separated; repeatable).");
         cl.addFlag("no-default-excludes", "Also read build outputs, vendored code, lock files.");
         cl.addInt("max-file-size", "BYTES", "Largest file read from a folder (a text source may be 16 times larger).", 1,
                   int64_t(1) << 30, 1 << 20);
         addSessionOptions(cl);  // --model and --context-limit: a source that alone does not fit is refused
     },
     addCommand},
    {"remove", "Remove a source from a library.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         cl.addPositional("SOURCE", "The source's number (from `library show`) or path.");
     },
     removeCommand},
    {"ask", "Ask a question about a library (a new chat, or a follow-up with --chat).",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         cl.addPositional("QUESTION", "The question.");
         cl.addInt("chat", "ID", "Continue this chat.", 1, INT64_MAX);
         cl.addFlag("new-chat", "Start a new chat (the default).");
         cl.addFlag("json", "Print the answer and its figures as one JSON object.");
         cl.addFlag("no-think", "Answer without a thinking block.");
         cl.addInt("max-tokens", "N", "Most tokens in the answer.", 1, 1 << 20, 512);
         cl.addFloat("temperature", "T", "Sampling temperature; 0: greedy.", 0, 10, 0);
         cl.addFloat("top-p", "P", "Nucleus sampling threshold; 1: off.", 0, 1, 1);
         cl.addInt("seed", "S", "Sampling seed.", 0, INT64_MAX, 0);
         addSessionOptions(cl);
     },
     askCommand},
    {"library rename", "Rename a library.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         cl.addPositional("NEW-NAME", "Its new name.");
     },
     renameCommand},
    {"library delete", "Delete a library with its sources, chats and saved states (the files you added stay).",
     [](CommandLine& cl) { cl.addPositional("NAME", "The library."); }, deleteCommand},
    {"chats", "List a library's chats, or delete one with its saved state.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         cl.addInt("delete", "ID", "Delete this chat (its messages and saved state).", 1, INT64_MAX);
     },
     chatsCommand},
    {"export", "Print a chat as Markdown.",
     [](CommandLine& cl) {
         cl.addPositional("NAME", "The library.");
         cl.addPositional("CHAT", "The chat's number (from `quire chats`).");
         cl.addFlag("markdown", "Markdown output (required: the only format).");
     },
     exportCommand},
    {"config",
     "Change a setting: `quire config model DIR` sets the default model; `quire config backend URL` sends questions to an "
     "OpenAI-compatible server (`quire config backend local`: the local engine again).",
     [](CommandLine& cl) {
         cl.addPositional("KEY", "The setting (model, backend).");
         cl.addPositional("VALUE", "Its new value.");
         cl.addText("model", "NAME", "With backend: the model's id on the server (default: the first it lists).");
         cl.addText("api-key-file", "FILE", "With backend: a file holding the server's API key.");
     },
     configCommand, true},
};

}  // namespace

int library_command(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("quire");
    // "library" takes a verb ("library create"); the others are one word.
    const bool verbed = std::strcmp(argv[1], "library") == 0;
    const QString name = verbed && argc > 2 ? QString("library ") + argv[2] : QString(argv[1]);
    for (const Subcommand& sub : kSubcommands) {
        if (name != sub.name) continue;
        CommandLine cl(QString("quire ") + sub.name, sub.description);
        addDataDirOption(cl);
        sub.declare(cl);
        if (auto exit = cl.parse(argc, argv, verbed ? 3 : 2)) return *exit;
        // Only the commands that create a library create the data folder and its database; the others
        // have nothing to work on there (a mistyped --data-dir used to be created, and listed nothing,
        // as if the libraries were gone).
        const QString dataDir = dataDirOf(cl);
        if (const QString problem = dataFolderProblem(dataDir); !problem.isEmpty()) return fail(problem);
        if (!sub.createsLibrary && !holdsLibrary(dataDir)) {
            std::fprintf(stderr, "quire: %s holds no Quire library%s\n", qPrintable(QDir::toNativeSeparators(dataDir)),
                         name == "library list" ? "" : " (create one with `quire library create NAME`)");
            return name == "library list" ? 0 : 1;
        }
        auto ctx = openAppContext(cl);
        if (!ctx) return 1;
        return sub.run(*ctx, cl);
    }
    const bool help = argc > 2 && (std::strcmp(argv[argc - 1], "--help") == 0 || std::strcmp(argv[argc - 1], "-h") == 0);
    if (!help) {
        const QString what = verbed ? (argc > 2 ? "no library command '" + QString(argv[2]) + "'" : QString("`quire library` needs a command"))
                                    : "no command '" + QString(argv[1]) + "'";
        std::fprintf(stderr, "quire: %s\n", qPrintable(visibleControls(what)));
    }
    std::fputs(kUsage, help ? stdout : stderr);
    return help ? 0 : 2;
}

}  // namespace quire::cli
