#include "engine_setup.h"

#include <cstdio>
#include <cstdlib>

namespace quire::cli {

const char* kEngineOptionsUsage =
    "  [--backend cpu|cuda] [--precision bf16|fp32] [--regime per-query|per-request] [--threads N]\n"
    "  [--gpu N] (with --backend cuda: which GPU, 0 by default)\n";

bool read_gpu_option(const Args& args, EngineOptions& options) {
    auto g = args.value("--gpu");
    if (!g) return true;
    char* end = nullptr;
    const long n = std::strtol(g->c_str(), &end, 10);
    if (g->empty() || *end != '\0' || n < 0 || n > 1024) {
        std::fprintf(stderr, "quire: --gpu must be a device number (0, 1, ...), not '%s'\n", g->c_str());
        return false;
    }
    options.gpu = static_cast<int>(n);
    return true;
}

EngineSetup setup_engine(const Args& args) {
    EngineSetup s;
    const auto dir = args.value("--model");
    if (!dir) {
        std::fprintf(stderr, "quire: --model DIR is required\n");
        return s;
    }
    Backend backend = Backend::cpu;
    EngineOptions options;
    if (auto b = args.value("--backend"); b && !parse_backend(*b, backend)) {
        std::fprintf(stderr, "quire: --backend must be cpu or cuda, not '%s'\n", b->c_str());
        return s;
    }
    if (auto p = args.value("--precision"); p && !parse_precision(*p, options.precision)) {
        std::fprintf(stderr, "quire: --precision must be bf16 or fp32, not '%s'\n", p->c_str());
        return s;
    }
    if (auto r = args.value("--regime"); r && !parse_regime_rule(*r, options.regime)) {
        std::fprintf(stderr, "quire: --regime must be per-query or per-request, not '%s'\n", r->c_str());
        return s;
    }
    if (auto t = args.value("--threads")) options.threads = std::atoi(t->c_str());
    if (!read_gpu_option(args, options)) return s;
    auto model = Model::load(*dir);
    if (!model) {
        std::fprintf(stderr, "quire: cannot load model %s:\n%s\n", dir->c_str(), model.status().message().c_str());
        return s;
    }
    auto engine = create_engine(model.value(), backend, options);
    if (!engine) {
        std::fprintf(stderr, "quire: %s\n", engine.status().message().c_str());
        return s;
    }
    s.model = model.value();
    s.engine = std::move(engine.value());
    return s;
}

}  // namespace quire::cli
