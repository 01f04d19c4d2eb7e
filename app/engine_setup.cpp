#include "engine_setup.h"

#include <cstdio>

#include "gpu_memory_plan.h"

namespace quire::cli {

void addGpuMemoryOption(CommandLine& cl, const QString& help) {
    cl.addChecked("gpu-memory", "GiB", help, [](const QString& value) -> std::optional<QString> {
        auto bytes = parse_gpu_memory_gib(value.toStdString());
        if (!bytes) return QString::fromStdString(bytes.status().message());
        return std::nullopt;
    });
}

int64_t gpuMemoryFrom(const CommandLine& cl) {
    const auto text = cl.text("gpu-memory");
    if (!text) return 0;
    auto bytes = parse_gpu_memory_gib(text->toStdString());
    return bytes ? bytes.value() : 0;  // parse() refused a bad value already
}

std::optional<QString> engineOptionsProblem(const CommandLine& cl) {
    if (cl.isSet("gpu-memory") && backendFrom(cl) != Backend::cuda)
        return QString("--gpu-memory budgets the GPU: it applies to --backend cuda only (the CPU engine uses host memory)");
    return std::nullopt;
}

void addEngineOptions(CommandLine& cl) {
    cl.addText("model", "DIR", "The MiniCPM-SALA model folder.");
    cl.addChoice("backend", {"cpu", "cuda"}, "Where the model runs.", "cpu");
    cl.addChoice("precision", {"bf16", "fp32"}, "Precision of the engine's arithmetic.");
    cl.addChoice("regime", {"per-query", "per-request"}, "How the sparse-attention regime is chosen.");
    cl.addInt("threads", "N", "CPU threads; 0: all hardware threads.", 0, 1024, 0);
    cl.addInt("gpu", "N", "With --backend cuda: which GPU.", 0, 1024, 0);
    addGpuMemoryOption(cl, "With --backend cuda: the most GPU memory to use (weights, the library's state, workspace); a library "
                           "that does not fit is refused up front with the numbers.");
}

Backend backendFrom(const CommandLine& cl) {
    Backend backend = Backend::cpu;
    parse_backend(cl.text("backend")->toStdString(), backend);
    return backend;
}

EngineOptions engineOptionsFrom(const CommandLine& cl) {
    EngineOptions options;
    if (auto p = cl.text("precision")) parse_precision(p->toStdString(), options.precision);
    if (auto r = cl.text("regime")) parse_regime_rule(r->toStdString(), options.regime);
    options.threads = static_cast<int>(*cl.integer("threads"));
    options.gpu = static_cast<int>(*cl.integer("gpu"));
    options.gpu_memory_budget_bytes = gpuMemoryFrom(cl);
    return options;
}

EngineSetup setup_engine(const CommandLine& cl) {
    EngineSetup s;
    const auto dir = cl.text("model");
    if (!dir) {
        std::fprintf(stderr, "quire: --model DIR is required\n");
        return s;
    }
    if (auto problem = engineOptionsProblem(cl)) {
        std::fprintf(stderr, "quire: %s\n", qPrintable(*problem));
        return s;
    }
    auto model = Model::load(dir->toStdString());
    if (!model) {
        std::fprintf(stderr, "quire: cannot load model %s:\n%s\n", qPrintable(*dir), model.status().message().c_str());
        return s;
    }
    auto engine = create_engine(model.value(), backendFrom(cl), engineOptionsFrom(cl));
    if (!engine) {
        std::fprintf(stderr, "quire: %s\n", engine.status().message().c_str());
        return s;
    }
    s.model = model.value();
    s.engine = std::move(engine.value());
    return s;
}

}  // namespace quire::cli
