#pragma once
// The next token drawn on the GPU from one bf16 logits row, so a decode step returns a token id
// instead of a logits row. The same rules as quire::Sampler (engine/sampler.h), without the
// repetition penalty: greedy (temperature <= 0, ties to the lower id), else temperature -> top-k ->
// top-p -> min-p over the row sorted by (logit descending, id ascending), then the token whose
// interval of the kept probability mass holds u * total. The host draws u with the Sampler's own
// generator, so for the same seed the GPU and the CPU draw the same token: exactly for greedy and for
// the top-k / top-p / min-p cuts by count, and for every draw except one whose u falls within the
// rounding of the two probability sums (~1e-13 relative) of an interval's edge (the GPU sums each
// run of equal bf16 logits as count * weight, the CPU one by one).

#include <cuda_runtime.h>

#include <cstdint>

namespace quire::kernels {

// Read from device memory by the kernel, so one captured CUDA graph replays with a new draw.
struct SampleArgs {
    double u = 0.0;            // uniform in [0, 1): Sampler::next_uniform(); unused when greedy
    float temperature = 0.0f;  // <= 0 (or NaN): greedy
    float top_p = 1.0f;        // >= 1: off
    float min_p = 0.0f;        // <= 0: off
    int32_t reserved = 0;
    int64_t top_k = 0;         // <= 0 or >= vocab: off
};

// Device scratch the sampling kernel needs: a count per bf16 bit pattern.
constexpr int64_t kSampleScratchWords = int64_t{1} << 16;

// *out = the token drawn from logits[0 .. vocab) (bf16 bits) with *args. scratch: kSampleScratchWords
// uint32 of device memory (overwritten). One block; no allocation, no host synchronisation.
cudaError_t launch_sample_token(const uint16_t* logits, int64_t vocab, const SampleArgs* args, uint32_t* scratch, int32_t* out,
                                cudaStream_t stream);

}  // namespace quire::kernels
