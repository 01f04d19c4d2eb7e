#pragma once
// Shared by the engine-facing subcommands: parse --backend/--precision/--regime/--threads, load
// the model, create the engine; errors are printed as one clear line.

#include <memory>
#include <string>

#include "cli_args.h"
#include "engine.h"

namespace quire::cli {

struct EngineSetup {
    std::shared_ptr<const Model> model;
    std::unique_ptr<Engine> engine;
};

// Returns nullptr-engine on failure after printing the reason.
EngineSetup setup_engine(const Args& args);
// --gpu N into options.gpu; false (after printing why) when N is not a device number.
bool read_gpu_option(const Args& args, EngineOptions& options);
// The options setup_engine reads, for usage texts.
extern const char* kEngineOptionsUsage;

}  // namespace quire::cli
