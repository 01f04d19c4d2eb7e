// quire model-info DIR: what the folder holds and whether Quire can run it; with --gpu-memory GiB,
// what fits that budget per precision (gpu_fit_report.h).
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "engine_setup.h"
#include "file_util.h"
#include "gpu_fit_report.h"
#include "model_info.h"

namespace quire::cli {

int model_info_command(int argc, char** argv) {
    CommandLine cl("quire model-info", "Describe a MiniCPM-SALA model folder and check that Quire can run it.");
    cl.addPositional("MODEL_DIR", "The model folder.");
    addGpuMemoryOption(cl, "Also say, per precision, the longest context that fits this much GPU memory and whether libraries of "
                           "128K, 512K and 1M tokens fit.");
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;
    const std::string dir = cl.positional()[0].toStdString();
    const ModelReport report = inspect_model(dir);
    std::fputs(format_model_report(report).c_str(), stdout);
    // The budget needs only the configuration: a folder whose weights are still downloading gets it too.
    if (const int64_t budget = gpuMemoryFrom(cl); budget > 0 && report.config) {
        auto text = read_text_file(dir + "/config.json", 16 << 20);
        auto format = text ? weight_format_of_config(text.value()) : Result<WeightFormat>(text.status());
        if (!format) {
            std::fprintf(stderr, "quire: %s\n", format.status().message().c_str());
            return 1;
        }
        std::fputs(format_fit_report(fit_rows(*report.config, format.value(), budget), budget).c_str(), stdout);
    }
    return report.ok() ? 0 : 1;
}

}  // namespace quire::cli
