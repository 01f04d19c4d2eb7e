// quire model-info DIR: what the folder holds and whether Quire can run it.
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "model_info.h"

namespace quire::cli {

int model_info_command(int argc, char** argv) {
    CommandLine cl("quire model-info", "Describe a MiniCPM-SALA model folder and check that Quire can run it.");
    cl.addPositional("MODEL_DIR", "The model folder.");
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;
    const ModelReport report = inspect_model(cl.positional()[0].toStdString());
    std::fputs(format_model_report(report).c_str(), stdout);
    return report.ok() ? 0 : 1;
}

}  // namespace quire::cli
