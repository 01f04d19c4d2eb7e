#pragma once
// The stage-1 prefill paths for GQA groups of 16 (the 9B model's shape) and how launch_stage1_blocks
// chooses between them: Hopper's wgmma kernel (stage1_wgmma.cu, built only for sm_90a) where the
// device is an sm_90 that QUIRE_GPU_ARCH_LIMIT does not hide and whose one-time self-check against
// the mma.sync kernel passed, the portable mma.sync kernel (stage1_g16.cu) everywhere else.
// Tests and benchmarks name a path to compare them; QUIRE_STAGE1_WGMMA=0 in the environment makes
// every path the portable one (stage1_wgmma_supported() false), for an end-to-end comparison.

#include <cuda_runtime.h>

#include <cstdint>

#include "attention_ops.h"

namespace quire::kernels {

enum class Stage1Path { automatic, mma_sync, wgmma };

// True where the wgmma kernel can run here: built for sm_90a, the device (as device_limits()
// reports it) is sm_90, and its tile configuration fits the shared-memory limit. Says nothing
// about the self-check.
bool stage1_wgmma_supported();

// Tiles in flight the wgmma kernel uses here for head dimension d (4, or 2 where the shared-memory
// limit is lower); 0 where it cannot run.
int stage1_wgmma_ring(int64_t d);

// Runs the wgmma kernel and the mma.sync kernel once on a synthetic problem (allocating its own
// buffers, synchronising the device) and compares the block scores. The first call does the work;
// later calls return its result. A failure prints a warning to stderr and makes the automatic path
// use mma.sync from then on. False where wgmma is not supported at all.
bool stage1_wgmma_self_check();

// launch_stage1_blocks with the path named (automatic = what launch_stage1_blocks does). A named
// path that cannot run here returns cudaErrorNotSupported. Groups other than 16 and the decode
// shapes ignore `path`.
cudaError_t launch_stage1_blocks_on(Stage1Path path, const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens,
                                    int64_t pos0, int64_t kv_heads, int64_t group, int64_t d, int64_t stride, float* block_scores,
                                    float* scratch, int64_t scratch_floats, const Stage1Forced& forced, cudaStream_t stream);

}  // namespace quire::kernels
