// quire model-info DIR: what the folder holds and whether Quire can run it.
#include <cstdio>

#include "cli_args.h"
#include "commands.h"
#include "model_info.h"

namespace quire::cli {

int model_info_command(int argc, char** argv) {
    Args args(argc, argv, 2, {});
    if (!args.ok() || args.positional().size() != 1) {
        std::fprintf(stderr, "usage: quire model-info MODEL_DIR\n");
        return 2;
    }
    const ModelReport report = inspect_model(args.positional()[0]);
    std::fputs(format_model_report(report).c_str(), stdout);
    return report.ok() ? 0 : 1;
}

}  // namespace quire::cli
