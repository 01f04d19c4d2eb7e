// quire model download [REPO] [--to DIR] [--revision REV]: fetches a model repository from the
// Hugging Face Hub (HF_ENDPOINT overrides the address) into DIR (default DATA/models/NAME), with
// resume, progress, ETA, an up-front disk-space check and checksum verification (hub_download.h).
#include <QCoreApplication>
#include <QDir>

#include <cstdio>
#include <cstring>

#include "app_context.h"
#include "cli_args.h"
#include "commands.h"
#include "model_download/hub_download.h"
#include "model_info.h"

namespace quire::cli {

using namespace quire::app;

namespace {

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
    if (argc < 3 || std::strcmp(argv[2], "download") != 0) {
        std::fprintf(stderr, "usage: quire model download [OWNER/NAME] [--to DIR] [--revision REV] [--data-dir DIR]\n"
                             "(`quire model download --help` for more; `quire model-info DIR` checks a model folder)\n");
        return 2;
    }
    CommandLine cl("quire model download",
                   "Download a model from the Hugging Face Hub (HF_ENDPOINT sets another address, HF_TOKEN a token).");
    addDataDirOption(cl);
    cl.addPositional("REPO", "The repository, OWNER/NAME (default openbmb/MiniCPM-SALA).", true);
    cl.addText("to", "DIR", "The folder to download into (default DATA/models/NAME).");
    cl.addText("revision", "REV", "Branch, tag or commit.", "main");
    if (auto exit = cl.parse(argc, argv, 3)) return *exit;
    auto ctx = openAppContext(cl);
    if (!ctx) return 1;
    DownloadOptions o;
    if (!cl.positional().isEmpty()) o.repo = cl.positional()[0];
    o.revision = *cl.text("revision");
    o.targetDir = cl.isSet("to") ? *cl.text("to") : QDir(ctx->dataDir).filePath("models/" + o.repo.section('/', -1));
    if (o.targetDir.isEmpty()) return cl.usageError("--to needs a folder");
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
