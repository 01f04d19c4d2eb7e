#pragma once
// Asks the CUDA runtime which GPUs exist, without aborting when there is no driver or device.

#include <cstdint>
#include <string>
#include <vector>

namespace quire::kernels {

struct DeviceDescription {
    std::string name;
    int64_t total_memory = 0;
    int64_t free_memory = 0;
};

struct DeviceProbe {
    int device_count = 0;
    std::string reason;  // why there is no usable device, when device_count == 0
    std::string name;    // device 0
    int64_t total_memory = 0;
    int64_t free_memory = 0;
    int compute_major = 0;
    int compute_minor = 0;
    std::vector<DeviceDescription> devices;  // every device, in CUDA's order
};

DeviceProbe probe_devices();

}  // namespace quire::kernels
