#include "app_context.h"

#include "engine_setup.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include <cstdio>
#include <cstdlib>

namespace quire::app {

QString demoModelDir() {
    const QString exeDir = QCoreApplication::applicationDirPath();
    for (const QString& candidate : {exeDir + "/../share/quire/demo-model", QString(QUIRE_DEMO_MODEL_DIR)})
        if (QFileInfo::exists(candidate + "/config.json")) return QDir(candidate).absolutePath();
    return {};
}

QString demoLibraryDir() {
    const QString exeDir = QCoreApplication::applicationDirPath();
    for (const QString& candidate : {exeDir + "/../share/quire/demo", QString(QUIRE_SOURCE_DIR) + "/resources/demo"})
        if (QFileInfo::exists(candidate + "/the-keeper-of-the-light.txt")) return QDir(candidate).absolutePath();
    return {};
}

void addDataDirOption(cli::CommandLine& cl) { cl.addText("data-dir", "DIR", "Where the library and saved states live."); }

QString dataDirOf(const cli::CommandLine& cl) {
    const auto dir = cl.text("data-dir");
    return dir ? *dir : QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation);
}

bool holdsLibrary(const QString& dataDir) {
    const QFileInfo db(QDir(dataDir).filePath("library.sqlite"));
    return db.isFile() && db.size() > 0;  // an empty file is what a failed first open leaves: no library yet
}

QString dataFolderProblem(const QString& dataDir) {
    if (dataDir.isEmpty()) return "the data folder is empty (--data-dir \"\"): name a folder";
    const QFileInfo dir(dataDir);
    if (dir.exists() && !dir.isDir()) return dataDir + " is not a folder (--data-dir names the folder that holds the library)";
    if (dir.exists() && (!dir.isReadable() || !dir.isExecutable())) return "cannot read the data folder " + dataDir + ": permission denied";
    const QFileInfo db(QDir(dataDir).filePath("library.sqlite"));
    if (db.isSymLink() && !db.exists()) return db.filePath() + " is a link to nothing";
    if (db.exists() && !db.isFile()) return db.filePath() + " is not a file (a folder or a special file)";
    if (db.exists() && !db.isReadable()) return "cannot read " + db.filePath() + ": permission denied";
    return {};
}

std::unique_ptr<AppContext> openAppContext(const cli::CommandLine& cl) {
    auto ctx = std::make_unique<AppContext>();
    ctx->dataDir = dataDirOf(cl);
    if (const QString problem = dataFolderProblem(ctx->dataDir); !problem.isEmpty()) {
        std::fprintf(stderr, "quire: %s\n", qPrintable(problem));
        return nullptr;
    }
    if (ctx->dataDir.isEmpty() || !QDir().mkpath(ctx->dataDir)) {
        std::fprintf(stderr, "quire: cannot create the data folder %s\n", qPrintable(ctx->dataDir));
        return nullptr;
    }
    auto db = LibraryDb::open(QDir(ctx->dataDir).filePath("library.sqlite"));
    if (!db) {
        std::fprintf(stderr, "quire: %s\n", db.status().message().c_str());
        return nullptr;
    }
    ctx->db = std::move(db.value());
    if (ctx->db->diskFull())
        std::fprintf(stderr, "quire: note: %s is %s: it can be read but not changed\n", qPrintable(ctx->db->path()),
                     qPrintable(ctx->db->readOnlyReason()));
    return ctx;
}

bool loadEngine(AppContext& ctx, const cli::CommandLine& cl) {
    if (ctx.engine) return true;
    if (auto m = cl.text("model")) {
        ctx.modelDir = *m;
    } else if (auto s = ctx.db->setting("model"); s && !s.value().isEmpty()) {
        ctx.modelDir = s.value();
    } else {
        ctx.modelDir = demoModelDir();
        ctx.demoModel = true;
    }
    if (ctx.modelDir.isEmpty()) {
        std::fprintf(stderr, "quire: no model: pass --model DIR (a MiniCPM-SALA folder) or set one with `quire config model DIR`\n");
        return false;
    }
    if (auto problem = cli::engineOptionsProblem(cl)) {
        std::fprintf(stderr, "quire: %s\n", qPrintable(*problem));
        return false;
    }
    auto model = Model::load(ctx.modelDir.toStdString());
    if (!model) {
        std::fprintf(stderr, "quire: cannot load the model in %s:\n%s\n", qPrintable(ctx.modelDir), model.status().message().c_str());
        return false;
    }
    auto engine = create_engine(model.value(), cli::backendFrom(cl), cli::engineOptionsFrom(cl));
    if (!engine) {
        std::fprintf(stderr, "quire: %s\n", engine.status().message().c_str());
        return false;
    }
    ctx.model = model.value();
    ctx.engine = std::move(engine.value());
    std::fprintf(stderr, "model: %s%s\n", qPrintable(ctx.modelDir),
                 ctx.demoModel ? " (the bundled tiny demo model with random weights: its answers are not meaningful)" : "");
    return true;
}

}  // namespace quire::app
