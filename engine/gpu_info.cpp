#include "gpu_info.h"

#ifdef QUIRE_HAVE_CUDA
#include "device_probe.h"
#endif

namespace quire {

GpuInfo probe_gpus() {
    GpuInfo g;
#ifdef QUIRE_HAVE_CUDA
    g.cuda_built = true;
    const kernels::DeviceProbe p = kernels::probe_devices();
    g.device_count = p.device_count;
    g.name = p.name;
    g.total_memory = p.total_memory;
    g.free_memory = p.free_memory;
    g.reason = p.reason;
    for (const auto& d : p.devices) g.devices.push_back({d.name, d.total_memory, d.free_memory});
#else
    g.reason = "this build has no CUDA support";
#endif
    return g;
}

}  // namespace quire
