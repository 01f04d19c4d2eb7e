#pragma once
// Programmatic dependent launch (docs/architecture.md, kernels): a decode step's kernels are
// launched with the programmatic-serialization attribute where the device has it (sm_90 and newer),
// so that a kernel's CTAs can become resident while the kernel before it ends. Every kernel
// launched this way calls pdl_wait() (common.cuh) before it reads what an earlier kernel wrote or
// writes anything, and pdl_launch_dependents() once it may let the next one in.

#include <cuda_runtime.h>

#include <utility>

namespace quire::kernels {

// True on sm_90+ (as device_limits() reports the device) unless QUIRE_CUDA_PDL=0 (to compare).
bool pdl_enabled();

// kernel<<<grid, block, smem, stream>>>(args...) with the attribute where pdl_enabled().
template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    if (pdl_enabled()) {
        config.attrs = &attribute;
        config.numAttrs = 1;
    }
    return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace quire::kernels
