// quire quantize SRC DST: a GPTQ-layout copy of a model folder (engine/quantize/quantize_model.h),
// by round-to-nearest or by GPTQ with calibration text (a file, or a library's context).
#include <QCoreApplication>

#include <cstdio>

#include "app_context.h"
#include "cli_args.h"
#include "commands.h"
#include "interrupt.h"
#include "json.h"
#include "quantize/output_folder.h"
#include "quantize/quantize_model.h"
#include "regular_file.h"
#include "session/context_builder.h"

namespace quire::cli {

namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "quire quantize: %s\n", message.c_str());
    return 1;
}

constexpr int64_t kMaxCalibrationBytes = int64_t{256} << 20;
constexpr int64_t kMinCalibrationTokens = 16;
constexpr int64_t kCalibrationWindow = 256;  // tokens per calibration sample (each its own sequence)

Result<std::string> calibration_text(const QString& path) {
    auto bytes = app::readRegularFile(path, kMaxCalibrationBytes);
    if (!bytes) return Status(bytes.status().code(), "--calibration " + path.toStdString() + ": " +
                                                         app::fileErrorReason(bytes.status(), path).toStdString());
    const std::string text = bytes->toStdString();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
        return Status(ErrorCode::invalid_argument, "--calibration " + path.toStdString() + " is empty");
    if (text.find('\0') != std::string::npos || !is_valid_utf8(text))
        return Status(ErrorCode::invalid_argument, "--calibration " + path.toStdString() + " is not UTF-8 text (a binary file?)");
    return text;
}

// The tokens `quire ask` reads for library NAME: its system turn and every ready source.
Result<std::vector<int32_t>> library_tokens(const CommandLine& cl, const QString& name, const Tokenizer& tokenizer) {
    // Reading a library creates no data folder or database (a mistyped --data-dir used to be made).
    if (const QString dir = app::dataDirOf(cl); app::dataFolderProblem(dir).isEmpty() && !app::holdsLibrary(dir))
        return Status(ErrorCode::invalid_argument, (dir + " holds no Quire library").toStdString());
    auto ctx = app::openAppContext(cl);
    if (!ctx) return Status(ErrorCode::io_error, "cannot open the library database");
    auto lib = ctx->db->library(name);
    if (!lib) return lib.status();
    if (!lib.value()) return Status(ErrorCode::invalid_argument, "no library named '" + name.toStdString() + "' (see `quire library list`)");
    auto sources = ctx->db->sources(lib.value()->id);
    if (!sources) return sources.status();
    QVector<app::ContextSource> parts;
    for (const app::SourceRow& s : sources.value()) {
        if (s.status != "ready") continue;
        auto text = ctx->db->sourceText(s.id);
        if (!text) return text.status();
        parts.append({s.id, s.path, text.value()});
    }
    if (parts.isEmpty())
        return Status(ErrorCode::invalid_argument, "library '" + name.toStdString() + "' has no readable source to calibrate on");
    const QString system = lib.value()->systemPrompt.isEmpty() ? app::defaultSystemPrompt() : lib.value()->systemPrompt;
    auto assembled = app::assembleContext(tokenizer, system, parts, int64_t{1} << 40, 0);
    if (!assembled) return assembled.status();
    return std::move(assembled->tokens);
}

void print_report_line(const quantize::LayerReport& r) {
    const std::string shape = "[" + std::to_string(r.out) + ", " + std::to_string(r.in) + "]";
    if (r.calib_loss >= 0) std::printf("%-44s %-14s %12.6f %12.6f\n", r.name.c_str(), shape.c_str(), r.weight_error, r.calib_loss);
    else std::printf("%-44s %-14s %12.6f %12s\n", r.name.c_str(), shape.c_str(), r.weight_error, "-");
    std::fflush(stdout);
}

void print_progress(const quantize::QuantizeProgress& p) {
    static int64_t last_layer = -2;
    static double last_seconds = -10;
    if (p.layer == last_layer && p.seconds - last_seconds < 5 && p.bytes_done < p.bytes_total) return;
    last_layer = p.layer;
    last_seconds = p.seconds;
    const double done = static_cast<double>(p.bytes_done), total = static_cast<double>(p.bytes_total);
    const double eta = done > 0 ? p.seconds * (total - done) / done : 0;
    const std::string where = p.layer >= 0 ? "layer " + std::to_string(p.layer + 1) + "/" + std::to_string(p.layers) : "embedding/head";
    std::fprintf(stderr, "quantize: %s, %.1f / %.1f MB, %.0f s, ETA %.0f s (%s)\n", where.c_str(), done / 1e6, total / 1e6, p.seconds,
                 eta, p.tensor.c_str());
}

}  // namespace

int quantize_command(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("quire");
    CommandLine cl("quire quantize", "Write a 4- or 8-bit GPTQ-layout copy of a MiniCPM-SALA model folder.");
    cl.addPositional("SRC", "The unquantized model folder (bfloat16 or float16).");
    cl.addPositional("DST", "The folder to create (must not exist, or be empty; --force replaces it).");
    cl.addChoice("bits", {"4", "8"}, "Bits per weight (required).");
    cl.addInt("group-size", "N", "Input columns per scale: a multiple of 32, or -1 for one group per row.", -1, int64_t(1) << 31, 128);
    cl.addChoice("method", {"rtn", "gptq"}, "rtn: round to nearest (fast); gptq: Hessian-based, needs calibration text.", "rtn");
    cl.addText("calibration", "FILE", "A UTF-8 text file to calibrate on.");
    cl.addText("library", "NAME", "Calibrate on a library's context, as `quire ask` reads it.");
    cl.addInt("calibration-tokens", "N", "Calibration tokens (the first N).", kMinCalibrationTokens, 8192, 512);
    cl.addFlag("sym", "Symmetric grid (the default).");
    cl.addFlag("asym", "Asymmetric grid (a zero point per group).");
    cl.addFlag("desc-act", "GPTQ: quantize columns by descending activation energy (act-order; g_idx records the groups).");
    cl.addChoice("format", {"gptq", "gptq_v2"}, "checkpoint_format: gptq stores zero points minus one (what most loaders read).", "gptq");
    cl.addInt("shard-size", "MB", "Largest output shard.", 1, int64_t(1) << 20, 4096);
    cl.addInt("threads", "N", "CPU threads; 0: all hardware threads.", 0, 1024, 0);
    cl.addFlag("force", "Replace DST when it exists and is not empty.");
    app::addDataDirOption(cl);
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;

    if (!cl.isSet("bits")) return cl.usageError("--bits is required (4 or 8)");
    const int64_t group = *cl.integer("group-size");
    // What the GPTQ loaders accept (docs/quantization.md §1): -1 or a positive multiple of 32.
    if (group != -1 && (group <= 0 || group % 32 != 0))
        return cl.usageError(QString("--group-size must be -1 or a positive multiple of 32 (32, 64, 128, ...), not %1").arg(group));
    if (cl.flag("sym") && cl.flag("asym")) return cl.usageError("--sym and --asym exclude each other");
    const bool gptq = *cl.text("method") == "gptq";
    if (cl.isSet("calibration") && cl.isSet("library")) return cl.usageError("--calibration and --library exclude each other");
    const bool calibrated = cl.isSet("calibration") || cl.isSet("library");
    if (gptq && !calibrated) return cl.usageError("--method gptq needs calibration text: --calibration FILE or --library NAME");
    if (cl.flag("desc-act") && !gptq) return cl.usageError("--desc-act applies to --method gptq only");

    quantize::QuantizeOptions options;
    options.spec.bits = *cl.text("bits") == "8" ? 8 : 4;
    options.spec.group_size = group;
    options.spec.sym = !cl.flag("asym");
    options.spec.zero_offset = *cl.text("format") == "gptq" ? 1 : 0;
    options.gptq = gptq;
    options.desc_act = cl.flag("desc-act");
    options.force = cl.flag("force");
    options.shard_bytes = *cl.integer("shard-size") << 20;
    options.producer = std::string("quire:") + QUIRE_VERSION;
    options.threads = static_cast<int>(*cl.integer("threads"));
    const std::string src = cl.positional()[0].toStdString(), dst = cl.positional()[1].toStdString();

    // Every check that costs nothing comes before the model is loaded.
    if (Status st = quantize::check_source(src, options); !st) return fail(st.message());
    if (Status st = quantize::check_destination(src, dst, options.force); !st) return fail(st.message());
    std::unique_ptr<quantize::Calibrator> calibrator;
    if (calibrated) {
        std::optional<std::string> text;
        if (cl.isSet("calibration")) {
            auto t = calibration_text(*cl.text("calibration"));
            if (!t) return fail(t.status().message());
            text = std::move(t.value());
        }
        auto c = quantize::Calibrator::create(src, static_cast<int>(*cl.integer("threads")));
        if (!c) return fail(c.status().message());
        calibrator = std::move(c.value());
        const Tokenizer* tokenizer = calibrator->model().tokenizer();
        if (!tokenizer) return fail("SRC " + src + " has no tokenizer.model, which calibration needs");
        std::vector<int32_t> tokens;
        if (text) {
            tokens = tokenizer->encode_text(*text);
        } else {
            auto t = library_tokens(cl, *cl.text("library"), *tokenizer);
            if (!t) return fail(t.status().message());
            tokens = std::move(t.value());
        }
        if (static_cast<int64_t>(tokens.size()) < kMinCalibrationTokens)
            return fail("the calibration text is too short: " + std::to_string(tokens.size()) + " tokens, at least " +
                        std::to_string(kMinCalibrationTokens) + " are needed");
        const int64_t wanted = *cl.integer("calibration-tokens");
        calibrator->set_samples(quantize::calibration_windows(tokens, wanted, kCalibrationWindow));
        std::fprintf(stderr, "quire quantize: calibrating on %lld tokens in %lld window(s) over the text's %zu tokens%s\n",
                     static_cast<long long>(calibrator->token_count()), static_cast<long long>(calibrator->sample_count()), tokens.size(),
                     static_cast<int64_t>(tokens.size()) < wanted ? " (the text has no more)" : "");
    }

    catchInterrupts();  // the run stops at its next block of work and removes its staging folder
    std::printf("%-44s %-14s %12s %12s\n", "layer", "shape", "weight-err", "calib-loss");
    quantize::QuantizeRun run;
    run.src = src;
    run.dst = dst;
    run.options = options;
    run.calibrator = calibrator.get();
    run.cancel = interruptFlag();
    run.on_progress = print_progress;
    run.on_layer = print_report_line;
    auto reports = quantize::quantize_model(run);
    if (!reports) {
        fail(reports.status().message());
        return reports.status().code() == ErrorCode::cancelled ? interruptedExit(1) : 1;
    }

    double weight = 0, calib = 0;
    int64_t calibrated_layers = 0;
    QStringList lost;  // layers whose weights the grid could not hold (4-bit RTN loses ~0.1)
    for (const auto& r : reports.value()) {
        weight += r.weight_error;
        if (r.calib_loss >= 0) calib += r.calib_loss, ++calibrated_layers;
        if (!(r.weight_error < 0.5) || !(r.zeroed < 0.5)) lost << QString::fromStdString(r.name);
    }
    if (!lost.isEmpty())
        std::fprintf(stderr,
                     "quire quantize: warning: %lld layer(s) lost half or more of their weights (weight-err >= 0.5, or half their "
                     "nonzero weights became 0): values too small for an fp16 scale's steps (6e-8), or a few outliers stretching "
                     "their groups' grids (a smaller --group-size keeps more): %s\n",
                     static_cast<long long>(lost.size()), qPrintable(lost.mid(0, 5).join(", ") + (lost.size() > 5 ? ", ..." : "")));
    const auto n = static_cast<double>(std::max<size_t>(1, reports->size()));
    std::printf("overall: %zu linear layers, %d-bit, group %lld, %s, %s; mean relative weight error %.6f", reports->size(), options.spec.bits,
                static_cast<long long>(group), options.spec.sym ? "sym" : "asym", gptq ? (options.desc_act ? "gptq desc_act" : "gptq") : "rtn",
                weight / n);
    if (calibrated_layers) std::printf("; mean calibration loss %.6f over %lld tokens", calib / static_cast<double>(calibrated_layers),
                                       static_cast<long long>(calibrator->token_count()));
    std::printf("\nwrote %s (o_gate and z_proj kept unquantized, as quantization_config.dynamic says)\n", dst.c_str());
    return 0;
}

}  // namespace quire::cli
