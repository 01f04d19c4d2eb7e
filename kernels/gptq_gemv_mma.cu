// The 4-bit decode GEMV on tensor cores (gptq_gemv_mma.h).
//
// Work split: a CTA owns 32 output columns of one layer (weights tiled as in gptq_view.h, so its
// words are one contiguous stretch) and one of `splits` parts of the input; its 8 warps split that
// part in chunks of 128 inputs (one group: group_size % 128 == 0); a bf16 layer given with the 4-bit
// ones takes the CTAs after the tiles (bf16_rows). Inside a chunk, a warp step is
// 32 inputs (4 packed rows): lane (g = lane / 4, t = lane % 4) loads the 16-byte word group
// qweight[4·step + t][j0 + 4g .. j0 + 4g + 3], so a warp reads four whole 128-byte rows.
//
// mma.m16n8k16 (fragment layout in mma.cuh) with the weights as A (rows = output columns) and the
// token rows as B (columns n = tokens): the K order inside one mma is free as long as A and B agree,
// so lane t's four k slots are four nibbles of its own word and no lane needs another lane's data.
// A row g is word column 2·tile of lane g's words, row g + 8 word column 2·tile + 1; nibble pair
// (i, i + 4) lands in one bf16x2 register as (0x4300 | q) = 128 + q, and subtracting 128 + zero
// leaves q - zero exactly. B column n holds token n's inputs in the same nibble order (zero for
// n >= tokens). So C's (row g, n 2t / 2t + 1) are output column j0 + 4g + 2·tile (rows g + 8:
// + 1) for tokens 2t and 2t + 1.
//
// Per chunk the fp32 sums are scaled by the group's scales and added; the warps' sums are added in
// a fixed order through shared memory, and the parts of a split input in part order (the last part
// to finish adds them), so the result does not depend on timing. Against the CUDA-core kernel only
// the fp32 summation order differs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "common.cuh"
#include "device_limits.h"
#include "gptq_check.h"
#include "gptq_gemv_mma.h"
#include "gates.cuh"
#include "gemv_row.cuh"
#include "mma.cuh"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

constexpr int kCols = 32;     // output columns per CTA
constexpr int kWarps = 8;
constexpr int64_t kGatedInputMaxSmem = 48 << 10;  // the gated input's staging stays within the default dynamic limit
constexpr int kStepK = 32;    // inputs per warp step (4 packed rows)
constexpr int kChunkSteps = 4;  // steps per chunk: 128 inputs, which one group holds (group_size % 128 == 0)
constexpr int kMaxTokens = 8;  // tokens of one launch: the 8 columns (n) of B

struct Layer {
    const uint32_t* qweight;
    const uint32_t* qzeros;
    const __half* scales;
    __nv_bfloat16* y;
    int64_t out;
    int64_t group_size;
    int64_t first_block;
    int zero_offset;
    bool tiled;
    int64_t rows;  // packed rows: in / 8
};
// A bf16 layer that reads the same x (a 4-bit checkpoint's o_gate / z_proj), computed by CTAs of its
// own after the tiles (blockIdx.x >= first_block): a warp per output row, as gemv.h's kernel.
struct Bf16Rows {
    const uint4* w;
    int64_t rows;
    __nv_bfloat16* y;
    int64_t first_block;
};
struct Layers {
    int count;
    int64_t in;
    Layer l[kGptqGemvMaxLayers];
    Bf16Rows bf16;  // rows == 0: none
};

// (128 + nibble s, 128 + nibble s + 4) of w as a bf16 pair: one LOP3 ((a & b) | c) after the shift;
// written out because the compiler splits it into two when both masks are immediates.
__device__ __forceinline__ uint32_t nibble_pair(uint32_t w, int s) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(w >> s), "r"(0x000F000Fu), "r"(0x43004300u));
    return r;
}

__device__ __forceinline__ uint32_t sub_bf16x2(uint32_t a, uint32_t b) {
    __nv_bfloat162 r = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&a), *reinterpret_cast<const __nv_bfloat162*>(&b));
    return *reinterpret_cast<uint32_t*>(&r);
}

// Token row pairs in the nibble order: (x0, x4), (x1, x5), (x2, x6), (x3, x7) of 8 inputs.
__device__ __forceinline__ void token_pairs(const uint4 v, uint32_t (&a)[4]) {
    a[0] = __byte_perm(v.x, v.z, 0x5410);
    a[1] = __byte_perm(v.x, v.z, 0x7632);
    a[2] = __byte_perm(v.y, v.w, 0x5410);
    a[3] = __byte_perm(v.y, v.w, 0x7632);
}

// One chunk's weights (4 steps: 128 inputs inside one group) and its group's zero word and scales.
struct Chunk {
    uint4 w[kChunkSteps];
    uint32_t zeros;
    uint2 scales;  // columns j0 + 4g .. + 3
};

__device__ __forceinline__ void load_chunk(const Layer& L, int64_t chunk, const uint32_t* wbase, int64_t stride, int64_t col, int t, Chunk& c) {
    const uint32_t* wp = wbase + (4 * kChunkSteps * chunk + t) * stride;
#pragma unroll
    for (int u = 0; u < kChunkSteps; ++u) c.w[u] = __ldcs(reinterpret_cast<const uint4*>(wp + 4 * u * stride));
    const int cpg = static_cast<int>(L.group_size / (kStepK * kChunkSteps));  // chunks per group; 32-bit division below
    const int64_t group = cpg == 1 ? chunk : static_cast<int>(chunk) / cpg;
    c.zeros = __ldg(L.qzeros + group * (L.out / 8) + col / 8) >> (4 * (col % 8));
    c.scales = __ldg(reinterpret_cast<const uint2*>(L.scales + group * L.out + col));
}

// The chunk's products with the token rows (xc: the chunk's first input of token row g for lane t),
// scaled into acc[word column][token 2t or 2t + 1].
__device__ __forceinline__ void compute_chunk(const Chunk& c, const __nv_bfloat16* xc, bool has_token, bool x_shared, int zero_offset,
                                              float (&acc)[4][2]) {
    uint32_t zero[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) zero[i] = (0x4300u + ((c.zeros >> (4 * i)) & 0xFu) + static_cast<uint32_t>(zero_offset)) * 0x00010001u;
    float part[2][4] = {};  // tiles X (word columns 0, 1) and Y (2, 3)
#pragma unroll
    for (int u = 0; u < kChunkSteps; ++u) {
        uint32_t b[4] = {0, 0, 0, 0};
        if (has_token)
            token_pairs(x_shared ? *reinterpret_cast<const uint4*>(xc + u * kStepK) : __ldg(reinterpret_cast<const uint4*>(xc + u * kStepK)), b);
        const uint32_t ws[4] = {c.w[u].x, c.w[u].y, c.w[u].z, c.w[u].w};
#pragma unroll
        for (int tile = 0; tile < 2; ++tile) {
            const uint32_t w0 = ws[2 * tile], w1 = ws[2 * tile + 1], z0 = zero[2 * tile], z1 = zero[2 * tile + 1];
            // A rows g and g + 8 are word columns 2·tile and 2·tile + 1; k slots as in the header.
            const uint32_t a_lo[4] = {sub_bf16x2(nibble_pair(w0, 0), z0), sub_bf16x2(nibble_pair(w1, 0), z1), sub_bf16x2(nibble_pair(w0, 4), z0),
                                      sub_bf16x2(nibble_pair(w1, 4), z1)};
            mma_bf16(part[tile], a_lo, b[0], b[1]);
            const uint32_t a_hi[4] = {sub_bf16x2(nibble_pair(w0, 8), z0), sub_bf16x2(nibble_pair(w1, 8), z1), sub_bf16x2(nibble_pair(w0, 12), z0),
                                      sub_bf16x2(nibble_pair(w1, 12), z1)};
            mma_bf16(part[tile], a_hi, b[2], b[3]);
        }
    }
    const float2 s01 = __half22float2(*reinterpret_cast<const __half2*>(&c.scales.x));
    const float2 s23 = __half22float2(*reinterpret_cast<const __half2*>(&c.scales.y));
    // C (row g, n 2t / 2t + 1) = c0 / c1, (row g + 8, ...) = c2 / c3.
    acc[0][0] = fmaf(s01.x, part[0][0], acc[0][0]);
    acc[0][1] = fmaf(s01.x, part[0][1], acc[0][1]);
    acc[1][0] = fmaf(s01.y, part[0][2], acc[1][0]);
    acc[1][1] = fmaf(s01.y, part[0][3], acc[1][1]);
    acc[2][0] = fmaf(s23.x, part[1][0], acc[2][0]);
    acc[2][1] = fmaf(s23.x, part[1][1], acc[2][1]);
    acc[3][0] = fmaf(s23.y, part[1][2], acc[3][0]);
    acc[3][1] = fmaf(s23.y, part[1][3], acc[3][1]);
}

// What the kernel does around the dot products (gptq_gemv_mma.h): nothing; the output gate applied to
// x as it is read (x' = bf16(x · bf16(sigmoid(gate))), staged in shared memory once per CTA); or
// SwiGLU of two layers (gate, up) with the same columns, y = bf16(silu(bf16(g)) · bf16(u)).
enum Mode { kPlain = 0, kGatedInput = 1, kSwiglu = 2 };

// This warp's sums of one layer's tile over its chunks, left in red[warp] for the CTA to add. (Two
// chunks in flight per warp, at 80 or 119 registers, measured slower on the H200: 2.26-2.40 ms
// against 1.78 for a step's GEMVs.)
// `first`, when given, is the first chunk already loaded (before the kernel waited for its input).
__device__ __forceinline__ const uint32_t* tile_words(const Layer& L, int64_t j0, int g) {
    return L.qweight + gptq_word_base(L.tiled, L.rows, j0) + 4 * g;
}
__device__ __forceinline__ void tile_sums(const Layer& L, const __nv_bfloat16* xc, bool x_shared, int64_t c_begin, int n, int64_t j0, int g,
                                          int t, bool has_token, float (&red)[kWarps][kMaxTokens][kCols], int warp, int tokens,
                                          const Chunk* first) {
    const int64_t stride = gptq_row_stride(L.tiled, L.out);
    float acc[4][2] = {};
    const uint32_t* wb = tile_words(L, j0, g);
    int i = 0;
    if (first && n > 0) {
        compute_chunk(*first, xc, has_token, x_shared, L.zero_offset, acc);
        xc += kStepK * kChunkSteps;
        i = 1;
    }
    for (; i < n; ++i) {
        Chunk c;
        load_chunk(L, c_begin + i, wb, stride, j0 + 4 * g, t, c);
        compute_chunk(c, xc, has_token, x_shared, L.zero_offset, acc);
        xc += kStepK * kChunkSteps;
    }
    // Lane (g, t) holds word column c (output column j0 + 4g + c) for tokens 2t and 2t + 1.
#pragma unroll
    for (int c = 0; c < 4; ++c)
#pragma unroll
        for (int e = 0; e < 2; ++e)
            if (2 * t + e < tokens) red[warp][2 * t + e][4 * g + c] = acc[c][e];
}

// The bf16 layer's rows of this CTA (one token): the x-th CTA past the tiles takes rows of
// ((x - first) * splits + y) * kWarps, a warp each, with gemv_row.cuh's arithmetic.
__device__ __forceinline__ void bf16_rows(const Bf16Rows& b, int64_t chunks, const __nv_bfloat16* x) {
    const int64_t cta = (static_cast<int64_t>(blockIdx.x) - b.first_block) * gridDim.y + blockIdx.y;
    const int64_t r = cta * kWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const bool active = r < b.rows;
    const uint4* row = b.w + (active ? r : 0) * chunks;
    pdl_launch_dependents();
    const GemvRowEarly early = gemv_row_early(row, chunks, lane, active);  // weights only before the wait
    pdl_wait();
    if (!active) return;
    float sum[1];
    gemv_row_sums<1>(row, chunks, reinterpret_cast<const uint4*>(x), lane, early, sum);
    if (lane == 0) b.y[r] = to_bf(sum[0]);
}

// blockIdx.x: a 32-column tile (the layers' tiles one after another; with SwiGLU, of the gate layer,
// the up layer's tile computed beside it), or past the tiles a share of the bf16 layer's rows
// (bf16_rows); blockIdx.y: which of `splits` parts of the input. With
// splits > 1 each part leaves fp32 sums in `partials`, and the part that finishes last (a ticket per
// tile) adds them in part order and writes y: the same order every time.
template <int MIN_BLOCKS, int MODE>
__global__ void __launch_bounds__(kWarps * 32, MIN_BLOCKS)
    gptq_gemv_mma_kernel(const Layers layers, const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ in_gate, int tokens,
                         int splits, float* partials, uint32_t* tickets) {
    constexpr int kSums = MODE == kSwiglu ? 2 : 1;  // layers summed per tile
    __shared__ float red[kSums][kWarps][kMaxTokens][kCols];
    __shared__ bool last;
    extern __shared__ __align__(16) __nv_bfloat16 gated_x[];  // kGatedInput: [tokens][this part's inputs]
    if constexpr (MODE == kPlain)
        if (layers.bf16.rows > 0 && static_cast<int64_t>(blockIdx.x) >= layers.bf16.first_block) {
            bf16_rows(layers.bf16, layers.in / 8, x);
            return;
        }
    // This CTA's layer, chosen with constant indices only (a variable index would copy the
    // parameter array to local memory).
    Layer L = layers.l[0];
#pragma unroll
    for (int i = 1; i < kGptqGemvMaxLayers; ++i)
        if (i < layers.count && static_cast<int64_t>(blockIdx.x) >= layers.l[i].first_block) L = layers.l[i];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int64_t in = layers.in, j0 = (static_cast<int64_t>(blockIdx.x) - L.first_block) * kCols;
    const int64_t chunks = in / (kStepK * kChunkSteps), per_split = (chunks + splits - 1) / splits;
    const int64_t p_begin = min64(chunks, blockIdx.y * per_split), p_end = min64(chunks, p_begin + per_split);
    const int64_t per_warp = (p_end - p_begin + kWarps - 1) / kWarps;
    const int64_t c_begin = min64(p_end, p_begin + warp * per_warp);
    const int n = static_cast<int>(min64(p_end, c_begin + per_warp) - c_begin);
    const bool has_token = g < tokens;
    const int64_t k_begin = p_begin * kStepK * kChunkSteps, k_count = (p_end - p_begin) * kStepK * kChunkSteps;
    const __nv_bfloat16* xc = x + g * in + (c_begin * kChunkSteps * 4 + t) * 8;
    // Programmatic dependent launch (launch_with): the first chunk's weights are read while the
    // kernel before this one may still run; x, the gate and every output only after pdl_wait().
    pdl_launch_dependents();
    Chunk first;
    if (n > 0) load_chunk(L, c_begin, tile_words(L, j0, g), gptq_row_stride(L.tiled, L.out), j0 + 4 * g, t, first);
    pdl_wait();
    if constexpr (MODE == kGatedInput) {
        // This part's inputs of every token, gated once here instead of by every lane that reads them.
        for (int64_t i = threadIdx.x; i < tokens * k_count; i += kWarps * 32) {
            const int64_t r = i / k_count, k = k_begin + i % k_count;
            gated_x[i] = to_bf(bf(x[r * in + k]) * sigmoid_gate_factor(bf(in_gate[r * in + k])));
        }
        __syncthreads();
        xc = gated_x + g * k_count + ((c_begin - p_begin) * kChunkSteps * 4 + t) * 8;
    }
    tile_sums(L, xc, MODE == kGatedInput, c_begin, n, j0, g, t, has_token, red[0], warp, tokens, &first);
    if constexpr (MODE == kSwiglu) tile_sums(layers.l[1], xc, false, c_begin, n, j0, g, t, has_token, red[kSums - 1], warp, tokens, nullptr);
    __syncthreads();
    // The tiles' columns (the bf16 layer's CTAs after them keep no partial sums).
    const int64_t tiles = layers.bf16.rows > 0 ? layers.bf16.first_block : static_cast<int64_t>(gridDim.x);
    const int64_t total_cols = tiles * kCols * kSums, tile_col = static_cast<int64_t>(blockIdx.x) * kCols * kSums;
    // Where part s of the input leaves layer q's sum for token r and column col of this tile.
    auto part_at = [&](int64_t s, int r, int q, int col) { return (s * tokens + r) * total_cols + tile_col + q * kCols + col; };
    auto finish = [&](int r, int col, const float (&sum)[kSums]) {
        if constexpr (MODE == kSwiglu) L.y[r * L.out + j0 + col] = to_bf(silu_mul_one(round_bf(sum[0]), round_bf(sum[1])));
        else L.y[r * L.out + j0 + col] = to_bf(sum[0]);
    };
    for (int i = threadIdx.x; i < tokens * kCols; i += kWarps * 32) {
        const int r = i / kCols, col = i % kCols;
        float sum[kSums];
#pragma unroll
        for (int q = 0; q < kSums; ++q) {
            sum[q] = 0.0f;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) sum[q] += red[q][w][r][col];
        }
        if (splits == 1) finish(r, col, sum);
        else
#pragma unroll
            for (int q = 0; q < kSums; ++q) partials[part_at(blockIdx.y, r, q, col)] = sum[q];
    }
    if (splits == 1) return;
    __threadfence();  // this part's sums are visible before its ticket
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(tickets + blockIdx.x, 1u) == static_cast<unsigned>(splits - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = threadIdx.x; i < tokens * kCols; i += kWarps * 32) {
        const int r = i / kCols, col = i % kCols;
        float sum[kSums];
#pragma unroll
        for (int q = 0; q < kSums; ++q) {
            sum[q] = 0.0f;
            for (int s = 0; s < splits; ++s) sum[q] += __ldcg(partials + part_at(s, r, q, col));
        }
        finish(r, col, sum);
    }
    if (threadIdx.x == 0) tickets[blockIdx.x] = 0;  // ready for the next launch
}

template <int MIN_BLOCKS, int MODE>
cudaError_t launch_with(const Layers& ls, int64_t blocks, int splits, const __nv_bfloat16* x, const __nv_bfloat16* in_gate, int tokens,
                        const GptqGemvScratch* scratch, int64_t smem, cudaStream_t stream) {
    // Programmatic dependent launch (pdl_launch.h): the CTAs may start while the kernel before (a
    // norm, the attention's combine, the previous GEMV) ends, and read their first weights then.
    return launch_pdl(gptq_gemv_mma_kernel<MIN_BLOCKS, MODE>, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(splits)),
                      dim3(kWarps * 32), static_cast<size_t>(smem), stream, ls, x, in_gate, tokens, splits,
                      splits > 1 ? scratch->partials : nullptr, splits > 1 ? scratch->tickets : nullptr);
}

}  // namespace

bool gptq_gemv_mma_applies(const GptqGemvLayer* layers, int count) {
    if (!layers || count < 1 || count > kGptqGemvMaxLayers) return false;
    const DeviceLimits& lim = device_limits();
    if (lim.device < 0 || lim.sm_major < 8) return false;
    for (int i = 0; i < count; ++i) {
        const GptqView& w = layers[i].weights;
        if (!gptq_view_usable(w) || w.bits != 4 || w.g_idx || w.in != layers[0].weights.in) return false;
        if (w.in % (kStepK * kChunkSteps) || w.out % kCols || w.group_size % (kStepK * kChunkSteps)) return false;
        if (reinterpret_cast<uintptr_t>(w.scales) % 8) return false;
    }
    return true;
}

namespace {

// Enough CTAs to fill every SM several times over (a layer of 4096 outputs has only 128 tiles):
// split the input when the scratch has room for the parts' sums. `sums` layers per tile (SwiGLU: 2)
// count as that many tiles, so a fused launch splits as the separate one would and sums in its order.
int plan_splits(int64_t tiles, int64_t in, int64_t tokens, int64_t sums, const GptqGemvScratch* scratch, int max_splits) {
    const int64_t chunks = in / (kStepK * kChunkSteps);
    const int64_t want = 4 * static_cast<int64_t>(device_limits().sm_count);
    const int splits =
        static_cast<int>(std::clamp<int64_t>((want + tiles * sums - 1) / (tiles * sums), 1, std::min<int64_t>(max_splits, chunks)));
    if (splits > 1 && (!scratch || !scratch->partials || !scratch->tickets || scratch->ticket_count < tiles ||
                       scratch->partial_floats < splits * tokens * tiles * kCols * sums))
        return 1;
    return splits;
}

// Bytes of one CTA's gated inputs (kGatedInput), 0 otherwise.
int64_t gated_input_smem(int64_t in, int64_t tokens, int splits, int mode) {
    const int64_t chunks = in / (kStepK * kChunkSteps);
    return mode == kGatedInput ? tokens * ((chunks + splits - 1) / splits) * kStepK * kChunkSteps * 2 : 0;
}

// Shared launcher of the three modes: `layers` as given (kPlain), one layer (kGatedInput), or the
// gate and up layers (kSwiglu, which writes layers[0].out).
cudaError_t launch_mode(const GptqGemvLayer* layers, int count, const uint16_t* x, const uint16_t* in_gate, int64_t tokens, cudaStream_t stream,
                        const GptqGemvScratch* scratch, int mode, int max_splits, int min_blocks, const GptqGemvBf16* bf16 = nullptr) {
    if (tokens <= 0) return cudaSuccess;
    if (!gptq_gemv_mma_applies(layers, count) || tokens > kMaxTokens || !x || reinterpret_cast<uintptr_t>(x) % 16) return cudaErrorInvalidValue;
    Layers ls{};
    ls.count = mode == kSwiglu ? 1 : count;  // SwiGLU: every CTA takes the gate layer's tile, and the up layer's beside it
    ls.in = layers[0].weights.in;
    int64_t tiles = 0;
    for (int i = 0; i < count; ++i) {
        const GptqView& w = layers[i].weights;
        if (!layers[i].out && !(mode == kSwiglu && i == 1)) return cudaErrorInvalidValue;
        ls.l[i] = Layer{reinterpret_cast<const uint32_t*>(w.qweight), reinterpret_cast<const uint32_t*>(w.qzeros), w.scales,
                        reinterpret_cast<__nv_bfloat16*>(layers[i].out), w.out, w.group_size, tiles, w.zero_offset, w.tiled, w.in / 8};
        if (mode != kSwiglu || i == 0) tiles += w.out / kCols;
    }
    const int splits = plan_splits(tiles, ls.in, tokens, mode == kSwiglu ? 2 : 1, scratch, max_splits);
    int64_t blocks = tiles;  // the tiles, then the bf16 layer's CTAs (the same split as the tiles' grid)
    if (bf16) {
        const int64_t ctas = (bf16->rows + kWarps - 1) / kWarps;
        ls.bf16 = Bf16Rows{reinterpret_cast<const uint4*>(bf16->w), bf16->rows, reinterpret_cast<__nv_bfloat16*>(bf16->out), tiles};
        blocks += (ctas + splits - 1) / splits;
    }
    if (blocks > 0x7FFFFFFF) return cudaErrorInvalidValue;
    const int64_t smem = gated_input_smem(ls.in, tokens, splits, mode);
    if (smem > kGatedInputMaxSmem) return cudaErrorInvalidValue;
    const auto* xb = reinterpret_cast<const __nv_bfloat16*>(x);
    const auto* gb = reinterpret_cast<const __nv_bfloat16*>(in_gate);
    const int n = static_cast<int>(tokens);
    if (mode == kGatedInput) return launch_with<4, kGatedInput>(ls, blocks, splits, xb, gb, n, scratch, smem, stream);
    // SwiGLU keeps two layers' sums: at 64 registers (4 CTAs per SM) it spills ~100 bytes, and is
    // still faster than at 80 registers and 3 CTAs (H200 lab: a step's GEMVs 1.86 against 1.96 ms).
    if (mode == kSwiglu && min_blocks == 3) return launch_with<3, kSwiglu>(ls, blocks, splits, xb, gb, n, scratch, smem, stream);
    if (mode == kSwiglu) return launch_with<4, kSwiglu>(ls, blocks, splits, xb, gb, n, scratch, smem, stream);
    if (min_blocks >= 4) return launch_with<4, kPlain>(ls, blocks, splits, xb, gb, n, scratch, smem, stream);
    if (min_blocks == 2) return launch_with<2, kPlain>(ls, blocks, splits, xb, gb, n, scratch, smem, stream);
    return launch_with<1, kPlain>(ls, blocks, splits, xb, gb, n, scratch, smem, stream);
}

}  // namespace

cudaError_t launch_gptq_gemv_mma(const GptqGemvLayer* layers, int count, const uint16_t* x, int64_t tokens, cudaStream_t stream,
                                 const GptqGemvScratch* scratch, int max_splits, int min_blocks) {
    return launch_mode(layers, count, x, nullptr, tokens, stream, scratch, kPlain, max_splits, min_blocks);
}

bool gptq_gemv_mma_gated_input_applies(const GptqView& w, int64_t tokens, const GptqGemvScratch* scratch) {
    const GptqGemvLayer one{w, nullptr};
    if (tokens < 1 || tokens > kMaxTokens || !gptq_gemv_mma_applies(&one, 1)) return false;
    const int splits = plan_splits(w.out / kCols, w.in, tokens, 1, scratch, kGptqGemvMaxSplits);
    return gated_input_smem(w.in, tokens, splits, kGatedInput) <= kGatedInputMaxSmem;
}

bool gptq_gemv_mma_swiglu_applies(const GptqView& gate, const GptqView& up, int64_t tokens) {
    const GptqGemvLayer two[2] = {{gate, nullptr}, {up, nullptr}};
    return tokens >= 1 && tokens <= kMaxTokens && gate.out == up.out && gptq_gemv_mma_applies(two, 2);
}

cudaError_t launch_gptq_gemv_mma_gated_input(const GptqView& w, const uint16_t* x, const uint16_t* gate, int64_t tokens, uint16_t* y,
                                             cudaStream_t stream, const GptqGemvScratch* scratch) {
    if (!gate) return cudaErrorInvalidValue;
    const GptqGemvLayer one{w, y};
    return launch_mode(&one, 1, x, gate, tokens, stream, scratch, kGatedInput, kGptqGemvMaxSplits, 4);
}

bool gptq_gemv_mma_bf16_applies(const GptqGemvLayer* layers, int count, const GptqGemvBf16& bf16, int64_t tokens) {
    return tokens == 1 && gptq_gemv_mma_applies(layers, count) && bf16.w && bf16.out && bf16.rows > 0 && bf16.cols == layers[0].weights.in &&
           reinterpret_cast<uintptr_t>(bf16.w) % 16 == 0;
}

cudaError_t launch_gptq_gemv_mma_with_bf16(const GptqGemvLayer* layers, int count, const GptqGemvBf16& bf16, const uint16_t* x, int64_t tokens,
                                           cudaStream_t stream, const GptqGemvScratch* scratch) {
    if (tokens <= 0) return cudaSuccess;
    if (!gptq_gemv_mma_bf16_applies(layers, count, bf16, tokens)) return cudaErrorInvalidValue;
    return launch_mode(layers, count, x, nullptr, tokens, stream, scratch, kPlain, kGptqGemvMaxSplits, 4, &bf16);
}

cudaError_t launch_gptq_gemv_mma_swiglu(const GptqView& gate, const GptqView& up, const uint16_t* x, int64_t tokens, uint16_t* y,
                                        cudaStream_t stream, const GptqGemvScratch* scratch, int min_blocks) {
    if (gate.out != up.out) return cudaErrorInvalidValue;
    const GptqGemvLayer two[2] = {{gate, y}, {up, nullptr}};
    return launch_mode(two, 2, x, nullptr, tokens, stream, scratch, kSwiglu, kGptqGemvMaxSplits, min_blocks);
}

}  // namespace quire::kernels
