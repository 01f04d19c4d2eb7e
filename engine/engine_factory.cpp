#include "cpu/cpu_engine.h"
#ifdef QUIRE_HAVE_CUDA
#include "cuda/cuda_engine.h"
#endif
#include "engine.h"

namespace quire {

const char* backend_name(Backend b) { return b == Backend::cpu ? "cpu" : "cuda"; }

bool parse_backend(const std::string& s, Backend& out) {
    if (s == "cpu") out = Backend::cpu;
    else if (s == "cuda") out = Backend::cuda;
    else return false;
    return true;
}

Result<std::unique_ptr<Engine>> create_engine(std::shared_ptr<const Model> model, Backend backend, const EngineOptions& options) {
    if (!model) return Status(ErrorCode::invalid_argument, "no model");
    if (backend == Backend::cuda) {
#ifdef QUIRE_HAVE_CUDA
        return cuda::CudaEngine::create(std::move(model), options);
#else
        return Status(ErrorCode::unsupported, "this build has no CUDA backend; use --backend cpu");
#endif
    }
    if (model->is_synthetic())
        return Status(ErrorCode::unsupported, "a synthetic model (no weights) runs on the CUDA backend only, which draws random weights");
    return std::unique_ptr<Engine>(std::make_unique<cpu::CpuEngine>(std::move(model), options));
}

}  // namespace quire
