#pragma once
// Shared by the engine-facing subcommands: the --model/--backend/--precision/--regime/--threads/--gpu
// options, loading the model and creating the engine; errors are printed as one clear line.

#include <memory>

#include "cli_args.h"
#include "engine.h"

namespace quire::cli {

struct EngineSetup {
    std::shared_ptr<const Model> model;
    std::unique_ptr<Engine> engine;
};

// Declares --model DIR and the engine options on a command line.
void addEngineOptions(CommandLine& cl);
// --gpu-memory GiB (parse() refuses what is not a positive number of GiB a GPU could have), and its
// value in bytes (0 when not given).
void addGpuMemoryOption(CommandLine& cl, const QString& help);
int64_t gpuMemoryFrom(const CommandLine& cl);
// What parse() cannot refuse alone (--gpu-memory without --backend cuda), or nullopt.
std::optional<QString> engineOptionsProblem(const CommandLine& cl);
// The backend and engine options from a parsed command line (their values were checked by parse()).
Backend backendFrom(const CommandLine& cl);
EngineOptions engineOptionsFrom(const CommandLine& cl);
// Loads --model (required here) and creates the engine; a null engine after printing the reason.
EngineSetup setup_engine(const CommandLine& cl);

}  // namespace quire::cli
