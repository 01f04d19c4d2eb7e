#pragma once
// The CPU engine's side of the state codec (state_file.h): rows of a CpuSequence in fp32.

#include <memory>

#include "cpu/cpu_sequence.h"
#include "state_file.h"

namespace quire::cpu {

// slot: layer -> ordinal among the layers of its kind. For saving pass the sequence as `from`; for
// loading into a fresh sequence pass it as `into` (rows then arrive in order, section by section).
std::unique_ptr<StateRows> cpu_state_rows(const std::vector<int64_t>& slot, const CpuSequence* from, CpuSequence* into);

}  // namespace quire::cpu
