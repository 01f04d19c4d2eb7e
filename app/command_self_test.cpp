// quire self-test: is this installation complete and working? Loads the bundled tiny model, runs a
// short generation on the CPU and, when a GPU is present, reports what CUDA finds; prints each step.
#include <QCoreApplication>
#include <QTemporaryDir>

#include <cstdio>

#include "app_context.h"
#include "cli_args.h"
#include "commands.h"
#include "engine.h"
#include "generator.h"
#include "gpu_info.h"
#include "model_info.h"

namespace quire::cli {

int self_test_command(int argc, char** argv) {
    CommandLine cl("quire self-test", "Check this installation with the bundled tiny model (and the GPU, when there is one).");
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;
    QCoreApplication app(argc, argv);
    // A check leaves nothing behind: the weights' hash cache (weights_hash.h) goes to a folder that
    // is removed at the end, not to the user's cache.
    QTemporaryDir cache;
    if (cache.isValid()) qputenv("XDG_CACHE_HOME", cache.path().toUtf8());
    int failures = 0;
    auto step = [&](bool ok, const std::string& what) {
        std::printf("%s %s\n", ok ? "[ ok ]" : "[FAIL]", what.c_str());
        failures += ok ? 0 : 1;
    };
    std::printf("quire %s self-test\n", QUIRE_VERSION);
    const QString dir = app::demoModelDir();
    step(!dir.isEmpty(), "bundled demo model: " + (dir.isEmpty() ? std::string("not found") : dir.toStdString()));
    if (dir.isEmpty()) return 1;
    const ModelReport report = inspect_model(dir.toStdString());
    step(report.ok(), "model files validate (" + std::to_string(report.tensor_count) + " tensors, " +
                          std::to_string(report.tokenizer_pieces) + " tokenizer pieces)");
    auto model = Model::load(dir.toStdString());
    step(model.is_ok(), model ? "model loads" : "model loads: " + model.status().message());
    if (!model) return 1;
    auto engine = create_engine(model.value(), Backend::cpu, {});
    step(engine.is_ok(), "CPU engine starts");
    if (!engine) return 1;
    const Tokenizer& tok = *model.value()->tokenizer();
    std::vector<int32_t> prompt{tok.bos_id()};
    const auto ids = tok.encode_text("The keeper lit the lamp");
    prompt.insert(prompt.end(), ids.begin(), ids.end());
    GenerateOptions g;
    g.max_tokens = 8;
    auto seq = engine.value()->new_sequence();
    auto r = generate(*engine.value(), *seq, prompt, g);
    step(r.is_ok() && !r->tokens.empty(), r ? "CPU generation: " + std::to_string(r->tokens.size()) + " tokens" : "CPU generation: " + r.status().message());
    const GpuInfo gpu = probe_gpus();
    if (gpu.device_count > 0) {
        std::printf("[info] GPU: %s, %.1f GiB (%.1f free)\n", gpu.name.c_str(), static_cast<double>(gpu.total_memory) / 1073741824.0,
                    static_cast<double>(gpu.free_memory) / 1073741824.0);
        auto cuda = create_engine(model.value(), Backend::cuda, {});
        if (cuda) {
            auto cseq = cuda.value()->new_sequence();
            auto cr = generate(*cuda.value(), *cseq, prompt, g);
            step(cr.is_ok(), "CUDA generation");
        } else {
            std::printf("[info] CUDA generation skipped: %s\n", cuda.status().message().c_str());
        }
    } else {
        std::printf("[info] no GPU used: %s\n", gpu.reason.c_str());
    }
    std::printf("%s\n", failures ? "self-test FAILED" : "self-test passed");
    return failures ? 1 : 0;
}

}  // namespace quire::cli
