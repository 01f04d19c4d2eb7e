#pragma once
// The CUDA engine's side of the state codec (state_file.h): rows of a CudaSequence, bf16 caches and
// fp32 Lightning states, copied through the engine's pinned staging buffers.

#include "cuda/cuda_engine.h"
#include "cuda/cuda_sequence.h"
#include "state_file.h"

namespace quire::cuda {

class CudaStateRows : public StateRows {
public:
    // Saving reads `from`; loading writes `into` (a sequence that owns all its rows).
    CudaStateRows(CudaEngine& engine, const CudaSequence* from, CudaSequence* into) : e_(engine), from_(from), into_(into) {}

    SectionDType cache_dtype() const override { return SectionDType::bf16; }
    Status read_rows(const SectionSpec& s, int64_t first, int64_t count, void* dst) override;
    Status write_rows(const SectionSpec& s, int64_t first, int64_t count, const void* src) override;
    // The file is read straight into the engine's pinned buffers and uploaded while the next chunk
    // is read (PinnedStaging::acquire).
    void* acquire_buffer(int64_t bytes) override;
    void release_buffer(void* buffer) override;
    Status finish() override;
    ~CudaStateRows() override;

private:
    CudaEngine& e_;
    const CudaSequence* from_;
    CudaSequence* into_;
};

}  // namespace quire::cuda
