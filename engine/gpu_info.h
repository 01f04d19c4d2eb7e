#pragma once
// Which GPUs the engine could use. Without CUDA in the build, says so instead of guessing.

#include <cstdint>
#include <string>
#include <vector>

namespace quire {

struct GpuDevice {
    std::string name;
    int64_t total_memory = 0;
    int64_t free_memory = 0;
};

struct GpuInfo {
    bool cuda_built = false;  // this build has CUDA code
    int device_count = 0;
    std::string name;         // device 0
    int64_t total_memory = 0;
    int64_t free_memory = 0;
    std::string reason;       // why there is no usable GPU
    std::vector<GpuDevice> devices;  // every device, numbered as EngineOptions::gpu counts them
};

GpuInfo probe_gpus();

}  // namespace quire
