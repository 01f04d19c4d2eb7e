// quire model download [REPO] [--to DIR] [--revision REV]: fetches a model repository from the
// Hugging Face Hub (HF_ENDPOINT overrides the address) into DIR (default DATA/models/NAME), with
// resume, progress, ETA, an up-front disk-space check and checksum verification (hub_download.h).
#include <QCoreApplication>
#include <QDir>

#include <cstdio>

#include "app_context.h"
#include "cli_args.h"
#include "commands.h"
#include "model_download/hub_download.h"
#include "model_info.h"

namespace quire::cli {

using namespace quire::app;

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: quire model download [OWNER/NAME] [--to DIR] [--revision REV] [--data-dir DIR]\n"
                 "  downloads a model from the Hugging Face Hub (default openbmb/MiniCPM-SALA) into DIR\n"
                 "  (default DATA/models/NAME); HF_ENDPOINT sets another hub address, HF_TOKEN a token\n");
    return 2;
}

QString duration(double seconds) {
    if (seconds < 0) return "?";
    if (seconds < 90) return QString("%1 s").arg(seconds, 0, 'f', 0);
    if (seconds < 5400) return QString("%1 min").arg(seconds / 60, 0, 'f', 0);
    return QString("%1 h").arg(seconds / 3600, 0, 'f', 1);
}

void printProgress(const DownloadProgress& p) {
    static qint64 lastPrinted = -1;
    const qint64 step = p.done >> 20;  // at most once per MiB
    if (step == lastPrinted && p.done != p.total) return;
    lastPrinted = step;
    std::fprintf(stderr, "\r%s: %.1f / %.1f MB · all: %.1f / %.1f MB (%.0f%%) · %.1f MB/s · ETA %s   ", qPrintable(p.file),
                 double(p.fileDone) / 1e6, double(p.fileSize) / 1e6, double(p.done) / 1e6, double(p.total) / 1e6,
                 p.total ? 100.0 * double(p.done) / double(p.total) : 100.0, p.bytesPerSecond / 1e6, qPrintable(duration(p.etaSeconds)));
}

}  // namespace

int model_download_command(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    Args args(argc, argv, 2, {});
    if (!args.ok()) {
        std::fprintf(stderr, "quire: %s\n", args.error().c_str());
        return usage();
    }
    const auto& pos = args.positional();
    if (pos.empty() || pos[0] != "download" || pos.size() > 2) return usage();
    auto ctx = openAppContext(args);
    if (!ctx) return 1;
    DownloadOptions o;
    if (pos.size() == 2) o.repo = QString::fromStdString(pos[1]);
    if (auto r = args.value("--revision")) o.revision = QString::fromStdString(*r);
    o.targetDir = args.value("--to") ? QString::fromStdString(*args.value("--to"))
                                     : QDir(ctx->dataDir).filePath("models/" + o.repo.section('/', -1));
    o.onProgress = printProgress;
    o.onNotice = [](const QString& s) { std::fprintf(stderr, "\n%s\n", qPrintable(s)); };
    std::fprintf(stderr, "downloading %s (%s) from %s into %s\n", qPrintable(o.repo), qPrintable(o.revision),
                 qPrintable(defaultHubEndpoint()), qPrintable(o.targetDir));
    auto r = downloadModel(o);
    std::fprintf(stderr, "\n");
    if (!r) {
        std::fprintf(stderr, "quire: %s\n", r.status().message().c_str());
        return 1;
    }
    std::printf("downloaded %lld files (%.1f MB), %lld already there, into %s\n", static_cast<long long>(r->fetched.size()),
                double(r->bytesFetched) / 1e6, static_cast<long long>(r->alreadyThere.size()), qPrintable(r->targetDir));
    const ModelReport report = inspect_model(r->targetDir.toStdString());
    if (!report.ok()) {
        std::fprintf(stderr, "quire: the downloaded folder is not a usable model:\n%s\n", format_model_report(report).c_str());
        return 1;
    }
    std::printf("to answer with it: quire config model %s\n", qPrintable(r->targetDir));
    return 0;
}

}  // namespace quire::cli
