// GPTQ weights to a bf16 [out, in] scratch at memory bandwidth. The packed words run along `out`
// (qweight [in / per_word, out]) while the scratch rows run along `in`, so a CTA transposes a tile
// through shared memory: it reads 32 word-rows x 64 columns with coalesced 4-byte loads, then each
// thread expands one word into per_word consecutive bf16 of one output row, and a warp's 32 threads
// write 32 consecutive words' worth (512 bytes for 4 bits) of that row.
#include <cuda_fp16.h>

#include <algorithm>

#include "common.cuh"
#include "device_limits.h"
#include "gptq_check.h"
#include "gptq_dequant.h"
#include "mma.cuh"

namespace quire::kernels {

namespace {

constexpr int kTileWords = 32;  // word-rows per tile (256 k at 4 bits, 128 at 8)
constexpr int kTileCols = 64;   // output rows per tile
constexpr int kThreads = 256;

template <int BITS>
__global__ void __launch_bounds__(kThreads) gptq_dequant_kernel(const uint32_t* __restrict__ qweight, const uint32_t* __restrict__ qzeros,
                                                                const __half* __restrict__ scales, const int32_t* __restrict__ g_idx,
                                                                int64_t in, int64_t out, int64_t group_size, int zero_offset,
                                                                bool tiled, __nv_bfloat16* __restrict__ dst) {
    constexpr int kPw = 32 / BITS;
    constexpr uint32_t kMask = (1u << BITS) - 1;
    __shared__ uint32_t tile[kTileWords][kTileCols + 1];  // +1: the transposed reads hit 32 banks
    const int64_t words = in / kPw;
    const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTileCols;
    const int64_t w0 = static_cast<int64_t>(blockIdx.y) * kTileWords;
    for (int i = threadIdx.x; i < kTileWords * kTileCols; i += kThreads) {
        const int r = i / kTileCols, c = i % kTileCols;
        const int64_t wr = w0 + r, j = j0 + c;
        tile[r][c] = (wr < words && j < out) ? __ldcs(qweight + gptq_word_base(tiled, words, j) + wr * gptq_row_stride(tiled, out)) : 0u;
    }
    __syncthreads();
    const int r = threadIdx.x % kTileWords;
    const int64_t wr = w0 + r;
    if (wr >= words) return;
    const int64_t zwords = out / kPw;
    for (int c = threadIdx.x / kTileWords; c < kTileCols; c += kThreads / kTileWords) {
        const int64_t j = j0 + c;
        if (j >= out) break;
        const uint32_t word = tile[r][c];
        const int64_t k0 = wr * kPw;
        float v[kPw];
        // Contiguous groups: one division per word, unless a group boundary falls inside it.
        const int64_t g_first = g_idx ? 0 : k0 / group_size;
        const bool one_group = !g_idx && g_first == (k0 + kPw - 1) / group_size;
        int64_t g_prev = -1;
        float s = 0.0f;
        int z = 0;
#pragma unroll
        for (int i = 0; i < kPw; ++i) {
            const int64_t k = k0 + i;
            const int64_t g = g_idx ? static_cast<int64_t>(__ldg(g_idx + k)) : (one_group ? g_first : k / group_size);
            if (g != g_prev) {
                s = __half2float(scales[g * out + j]);
                z = static_cast<int>((__ldg(qzeros + g * zwords + j / kPw) >> (BITS * (j % kPw))) & kMask) + zero_offset;
                g_prev = g;
            }
            const int q = static_cast<int>((word >> (BITS * i)) & kMask);
            v[i] = s * static_cast<float>(q - z);
        }
        __nv_bfloat16* d = dst + j * in + k0;
        if constexpr (BITS == 4) {
            uint4 pk;
            pk.x = pack_bf16(v[0], v[1]);
            pk.y = pack_bf16(v[2], v[3]);
            pk.z = pack_bf16(v[4], v[5]);
            pk.w = pack_bf16(v[6], v[7]);
            __stcs(reinterpret_cast<uint4*>(d), pk);
        } else {
            uint2 pk;
            pk.x = pack_bf16(v[0], v[1]);
            pk.y = pack_bf16(v[2], v[3]);
            __stcs(reinterpret_cast<uint2*>(d), pk);
        }
    }
}

__global__ void tile_qweight_kernel(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, int64_t rows, int64_t out) {
    const int64_t n = rows * out;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / out, c = i % out;
        dst[gptq_word_base(true, rows, c) + r * kGptqTileCols] = src[i];
    }
}

}  // namespace

cudaError_t launch_gptq_tile_qweight(const int32_t* src, int32_t* dst, int64_t rows, int64_t out, cudaStream_t stream) {
    if (!src || !dst || src == dst || rows <= 0 || out <= 0 || out % kGptqTileCols) return cudaErrorInvalidValue;
    const int64_t blocks = std::min<int64_t>((rows * out + 255) / 256, 65536);
    tile_qweight_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(reinterpret_cast<const uint32_t*>(src), reinterpret_cast<uint32_t*>(dst),
                                                                         rows, out);
    return cudaGetLastError();
}

cudaError_t launch_gptq_dequant(const GptqView& w, uint16_t* out, cudaStream_t stream) {
    if (!gptq_view_usable(w) || !out || reinterpret_cast<uintptr_t>(out) % 16) return cudaErrorInvalidValue;
    const int64_t words = w.in / gptq_per_word(w.bits);
    const int64_t col_tiles = (w.out + kTileCols - 1) / kTileCols, word_tiles = (words + kTileWords - 1) / kTileWords;
    if (col_tiles > 0x7FFFFFFF || word_tiles > 65535) return cudaErrorInvalidValue;
    // Static shared memory only (8.3 KB): fits every architecture's default 48 KB.
    if (device_limits().device < 0) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(word_tiles));
    const auto* qw = reinterpret_cast<const uint32_t*>(w.qweight);
    const auto* qz = reinterpret_cast<const uint32_t*>(w.qzeros);
    auto* dst = reinterpret_cast<__nv_bfloat16*>(out);
    if (w.bits == 4)
        gptq_dequant_kernel<4><<<grid, kThreads, 0, stream>>>(qw, qz, w.scales, w.g_idx, w.in, w.out, w.group_size, w.zero_offset, w.tiled, dst);
    else
        gptq_dequant_kernel<8><<<grid, kThreads, 0, stream>>>(qw, qz, w.scales, w.g_idx, w.in, w.out, w.group_size, w.zero_offset, w.tiled, dst);
    return cudaGetLastError();
}

}  // namespace quire::kernels
