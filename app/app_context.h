#pragma once
// What the library subcommands share: the data folder, the library database, and (lazily) the
// model and engine chosen by --model, the configured default, or the bundled demo model.

#include <QString>

#include <memory>

#include "cli_args.h"
#include "engine.h"
#include "library/library_db.h"

namespace quire::app {

struct AppContext {
    QString dataDir;
    std::unique_ptr<LibraryDb> db;
    QString modelDir;
    bool demoModel = false;
    std::shared_ptr<const Model> model;
    std::unique_ptr<Engine> engine;
};

// Declares --data-dir DIR.
void addDataDirOption(cli::CommandLine& cl);
// The data folder --data-dir names, or the default one.
QString dataDirOf(const cli::CommandLine& cl);
// Whether the folder holds a library database (commands that only read must not create one).
bool holdsLibrary(const QString& dataDir);
// Why the data folder cannot be used (not a folder, unreadable, a library.sqlite that is no file),
// or empty.
QString dataFolderProblem(const QString& dataDir);
// Opens the data folder (--data-dir or the default) and database; prints the reason and returns
// nullptr on failure.
std::unique_ptr<AppContext> openAppContext(const cli::CommandLine& cl);
// Loads the model and engine (options from cli::addEngineOptions) into ctx; prints the reason and
// returns false on failure.
bool loadEngine(AppContext& ctx, const cli::CommandLine& cl);
// The tiny demo model shipped with this build, or empty.
QString demoModelDir();
// The demo library's sources (resources/demo), or empty.
QString demoLibraryDir();

}  // namespace quire::app
