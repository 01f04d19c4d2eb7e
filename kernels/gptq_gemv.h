#pragma once
// Decode GEMV straight from GPTQ-packed weights (gptq_view.h): y[t, j] = bf16( sum_k x[t, k] W[j, k] )
// for a few tokens, reading qweight once with 16-byte loads (4 output columns x per_word inputs per
// load), scales and zero points once per group, fp32 accumulation. A 4-bit layer moves a quarter of
// the bytes of its bf16 form, which is where INT4 decode speed comes from.
//
// The weights are used exactly (an fp16 scale times a small integer is exact in fp32); the prefill
// path rounds them to bf16 first (gptq_dequant.h), so the two differ by that rounding only.

#include <cuda_runtime.h>

#include <cstdint>

#include "gptq_view.h"

namespace quire::kernels {

constexpr int64_t kGptqGemvMaxTokens = 8;
constexpr int kGptqGemvMaxLayers = 4;

// Which kernel runs. The CUDA-core kernel takes every layer; its contiguous-group path has two loops:
// `batched` issues a batch of 8 weight loads per thread and then computes it, `pipelined` keeps the
// next batch of 4 in flight while computing the current one. `tensor_cores` is the 4-bit kernel of
// gptq_gemv_mma.h (cudaErrorInvalidValue for layers it does not take). `automatic`: tensor cores
// where they apply, else batched, the fastest on the H200 (docs/benchmarks.md). The test runs each
// against the CPU.
enum class GptqGemvLoop { automatic, batched, pipelined, tensor_cores };

// Room that lets the 4-bit tensor-core path split the input of a small layer over several CTAs
// (gptq_gemv_mma.h): fp32 sums of the parts, and one ticket per 32 output columns of a launch.
// The tickets must be zero when allocated; every launch leaves them zero.
struct GptqGemvScratch {
    float* partials = nullptr;
    int64_t partial_floats = 0;
    uint32_t* tickets = nullptr;
    int64_t ticket_count = 0;
};



// x: [tokens, in] bf16, 16-byte aligned; y: [tokens, w.out] bf16. cudaErrorInvalidValue when the
// view is not usable (gptq_check.h), tokens > kGptqGemvMaxTokens or x is misaligned.
// scratch: lets the tensor-core kernel split the input of small layers over more CTAs (null: no split).
cudaError_t launch_gptq_gemv(const GptqView& w, const uint16_t* x, int64_t tokens, uint16_t* y, cudaStream_t stream,
                             GptqGemvLoop loop = GptqGemvLoop::automatic, const GptqGemvScratch* scratch = nullptr);

// Several GPTQ layers that read the same x (q/k/v, gate/up), in one launch: they must share `in` and
// `bits`; group size, g_idx and zero offset may differ. Output i is [tokens, layers[i].weights.out].
struct GptqGemvLayer {
    GptqView weights;
    uint16_t* out = nullptr;
};

cudaError_t launch_gptq_gemv_multi(const GptqGemvLayer* layers, int count, const uint16_t* x, int64_t tokens, cudaStream_t stream,
                                   GptqGemvLoop loop = GptqGemvLoop::automatic, const GptqGemvScratch* scratch = nullptr);

}  // namespace quire::kernels
