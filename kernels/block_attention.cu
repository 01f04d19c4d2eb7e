// Block attention on tensor cores (docs/model.md §3.1 dense and §3.6 block-sparse) for GQA groups
// below 16 (groups of 16 go to warp_attention.cu, one warp per query), after the NSA / InfLLM-v2
// kernels: the G query heads of one KV group form rows of an m16 MMA tile (16 / G queries per
// warp), so one K/V block read serves the whole group. A CTA of 4 warps takes consecutive queries;
// it walks the union of their block lists in ascending order, loading each block once (cp.async
// ring of 3 buffers, 2 where 3 do not fit), and a warp computes a block only for the queries that selected it.
// Online softmax in fp32, P rounded to bf16 for the P.V product (as FlashAttention-2 and the
// official kernel do), output bf16.
#include <cfloat>

#include "attention_ops.h"
#include "common.cuh"
#include "attention_tile.cuh"
#include "device_limits.h"

namespace quire::kernels {

namespace {

constexpr int kBlock = 64;
constexpr int kWarps = 4;
// K/V block buffers in the cp.async ring: 3 where they fit (96 KB at d = 128, plus the block bitmap),
// else 2 (a card with 99 KB per block and a context past ~1.5M tokens), chosen per launch from
// device_limits().
constexpr int kStagesPreferred = 3;
constexpr int kStagesFewest = 2;

// First set bit at or after `from` in the CTA's block bitmap, or -1.
__device__ __forceinline__ int64_t next_block(const uint32_t* bitmap, int64_t words, int64_t from) {
    for (int64_t w = from >> 5; w < words; ++w) {
        uint32_t bits = bitmap[w];
        if (w == (from >> 5)) bits &= ~0u << (from & 31);
        if (bits) return w * 32 + __ffs(bits) - 1;
    }
    return -1;
}

template <int D>
__device__ __forceinline__ void load_block(__nv_bfloat16* ks, __nv_bfloat16* vs, const RowSource& k, const RowSource& v, int64_t b,
                                           int64_t n_keys, int64_t kv_heads, int64_t g) {
    constexpr int kChunks = D / 8, kThreads = kWarps * 32, kRowsPerPass = kThreads / kChunks;
    static_assert(kRowsPerPass % 8 == 0, "the swizzle phase must not change between passes");
    const int64_t width = kv_heads * D, first = b * kBlock;
    const int c = threadIdx.x % kChunks, r0 = threadIdx.x / kChunks;
    const int soff = swz(r0, c, kChunks);
    if (first + kBlock <= n_keys && !(k.split > first && k.split < first + kBlock)) {
        // The common case: a whole block in one buffer; this thread's rows are r0, r0 + 8, ...
        const uint16_t* kp = k.row(first + r0, width) + g * D + c * 8;
        const uint16_t* vp = v.row(first + r0, width) + g * D + c * 8;
#pragma unroll
        for (int i = 0; i < kBlock / kRowsPerPass; ++i) {
            cp_async_16(ks + soff + i * kRowsPerPass * D, kp + i * kRowsPerPass * width, true);
            cp_async_16(vs + soff + i * kRowsPerPass * D, vp + i * kRowsPerPass * width, true);
        }
    } else {
        for (int i = 0; i < kBlock / kRowsPerPass; ++i) {
            const int64_t key = first + r0 + i * kRowsPerPass;
            const bool valid = key < n_keys;
            const int64_t row = valid ? key : 0, off = g * D + c * 8;
            cp_async_16(ks + soff + i * kRowsPerPass * D, k.row(row, width) + off, valid);
            cp_async_16(vs + soff + i * kRowsPerPass * D, v.row(row, width) + off, valid);
        }
    }
    cp_async_commit();
}

template <int D, int STAGES>
__global__ void __launch_bounds__(kWarps * 32) block_attention_kernel(const __nv_bfloat16* __restrict__ q, const RowSource k, const RowSource v, int64_t tokens, int64_t pos0,
                                                                      int64_t kv_heads, int G, const int32_t* __restrict__ selected,
                                                                      int64_t first_sparse, int64_t topk, __nv_bfloat16* __restrict__ out) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __nv_bfloat16* tiles = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [STAGES][K, V][64][D]
    uint32_t* bitmap = reinterpret_cast<uint32_t*>(tiles + STAGES * 2 * kBlock * D);
    const int qpw = 16 / G, qpc = kWarps * qpw;
    const int64_t t0 = static_cast<int64_t>(blockIdx.x) * qpc, g = blockIdx.y;
    const int64_t t_end = min64(tokens, t0 + qpc);
    const int64_t n_keys = pos0 + tokens;
    const int64_t words = ((pos0 + t_end - 1) / kBlock) / 32 + 1;
    const int64_t heads = kv_heads * G;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    // The union of the CTA's block lists as a bitmap.
    for (int64_t w = threadIdx.x; w < words; w += blockDim.x) bitmap[w] = 0;
    __syncthreads();
    for (int64_t idx = threadIdx.x; idx < qpc * words; idx += blockDim.x) {  // dense queries: blocks 0..qb
        const int64_t t = t0 + idx / words, w = idx % words;
        if (t >= t_end || t >= first_sparse) continue;
        const int64_t qb = (pos0 + t) / kBlock;
        if (w * 32 > qb) continue;
        const uint32_t bits = qb >= w * 32 + 31 ? ~0u : (~0u >> (31 - (qb - w * 32)));
        atomicOr(&bitmap[w], bits);
    }
    for (int64_t idx = threadIdx.x; idx < qpc * topk; idx += blockDim.x) {  // sparse queries: their lists
        const int64_t t = t0 + idx / topk;
        if (t >= t_end || t < first_sparse) continue;
        const int32_t b = selected[((t - first_sparse) * kv_heads + g) * topk + idx % topk];
        if (b >= 0) atomicOr(&bitmap[b >> 5], 1u << (b & 31));
    }
    __syncthreads();

    // This warp's rows: row r is head r % G of query warp * qpw + r / G.
    const int row0 = lane >> 2, row1 = row0 + 8;
    const int64_t tq0 = t0 + warp * qpw + row0 / G, tq1 = t0 + warp * qpw + row1 / G;
    const int64_t p0 = pos0 + tq0, p1 = pos0 + tq1;
    uint32_t qa[D / 16][4];
    #pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
        const int col = ks * 16 + 2 * (lane & 3);
        auto at = [&](int64_t t, int row, int c) -> uint32_t {
            if (t >= t_end) return 0u;
            return *reinterpret_cast<const uint32_t*>(q + (t * heads + g * G + row % G) * D + c);
        };
        qa[ks][0] = at(tq0, row0, col);
        qa[ks][1] = at(tq1, row1, col);
        qa[ks][2] = at(tq0, row0, col + 8);
        qa[ks][3] = at(tq1, row1, col + 8);
    }
    // Lanes below qpw track one query's list (a cursor into its ascending selection).
    const int64_t my_t = t0 + warp * qpw + lane;
    const bool my_valid = lane < qpw && my_t < t_end;
    const bool my_dense = my_t < first_sparse;
    const int64_t my_qb = (pos0 + my_t) / kBlock;
    const int32_t* my_list = my_valid && !my_dense ? selected + ((my_t - first_sparse) * kv_heads + g) * topk : nullptr;
    int64_t cursor = 0;

    const float scale = rsqrtf(static_cast<float>(D));
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    float acc[D / 8][4];
    #pragma unroll
    for (auto& a : acc) a[0] = a[1] = a[2] = a[3] = 0.0f;

    // A ring of STAGES block buffers: the load of the block STAGES - 1 ahead is in flight while
    // the current one is computed (one cp.async group per iteration, empty at the end).
    int64_t b = next_block(bitmap, words, 0);
    int64_t load_next = b;
    for (int st = 0; st < STAGES - 1; ++st) {
        if (load_next >= 0) {
            __nv_bfloat16* dst = tiles + st * 2 * kBlock * D;
            load_block<D>(dst, dst + kBlock * D, k, v, load_next, n_keys, kv_heads, g);
            load_next = next_block(bitmap, words, load_next + 1);
        } else {
            cp_async_commit();
        }
    }
    for (int it = 0; b >= 0; ++it) {
        if (load_next >= 0) {
            __nv_bfloat16* dst = tiles + ((it + STAGES - 1) % STAGES) * 2 * kBlock * D;
            load_block<D>(dst, dst + kBlock * D, k, v, load_next, n_keys, kv_heads, g);
            load_next = next_block(bitmap, words, load_next + 1);
        } else {
            cp_async_commit();
        }
        cp_async_wait<STAGES - 1>();
        __syncthreads();
        const __nv_bfloat16* ks = tiles + (it % STAGES) * 2 * kBlock * D;
        const __nv_bfloat16* vs = ks + kBlock * D;

        bool in = false;
        if (my_valid) {
            if (my_dense) {
                in = b <= my_qb;
            } else if (cursor < topk && my_list[cursor] == b) {
                in = true;
                ++cursor;
            }
        }
        const unsigned qmask = __ballot_sync(0xffffffffu, in);
        if (qmask) {
            const bool in0 = (qmask >> (row0 / G)) & 1u, in1 = (qmask >> (row1 / G)) & 1u;
            float s[8][4];
            attention_scores<D, 8>(qa, ks, lane, s);
            // Keys of this block each row sees: none if its query did not select it, else up to its position.
            const int lim[2] = {in0 ? static_cast<int>(min64(kBlock, max64(0, p0 - b * kBlock + 1))) : 0,
                                in1 ? static_cast<int>(min64(kBlock, max64(0, p1 - b * kBlock + 1))) : 0};
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[nt][e] = nt * 8 + 2 * (lane & 3) + (e & 1) < lim[e >> 1] ? s[nt][e] * scale : -INFINITY;
            softmax_update<D, 8>(s, m, l, acc);
            accumulate_pv<D, 8>(s, vs, lane, acc);
        }
        __syncthreads();  // this stage is free for the next load
        b = next_block(bitmap, words, b + 1);
    }

    #pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int64_t t = h ? tq1 : tq0;
        const int row = h ? row1 : row0;
        if (t >= t_end) continue;
        const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
        __nv_bfloat16* dst = out + (t * heads + g * G + row % G) * D + 2 * (lane & 3);
        #pragma unroll
        for (int dn = 0; dn < D / 8; ++dn)
            *reinterpret_cast<uint32_t*>(dst + dn * 8) = pack_bf16(acc[dn][2 * h] * inv, acc[dn][2 * h + 1] * inv);
    }
}

template <int D>
size_t smem_bytes(int stages, int64_t words) {
    return sizeof(__nv_bfloat16) * stages * 2 * kBlock * D + sizeof(uint32_t) * static_cast<size_t>(words);
}

template <int D, int STAGES>
cudaError_t launch_stages(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0, int64_t kv_heads,
                          int64_t group, const int32_t* selected, int64_t first_sparse, int64_t topk, uint16_t* out, int64_t ctas,
                          size_t smem, cudaStream_t stream) {
    auto kernel = block_attention_kernel<D, STAGES>;
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)); e != cudaSuccess)
        return e;
    kernel<<<dim3(static_cast<unsigned>(ctas), static_cast<unsigned>(kv_heads)), kWarps * 32, smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), k, v, tokens, pos0, kv_heads, static_cast<int>(group), selected, first_sparse, topk,
        reinterpret_cast<__nv_bfloat16*>(out));
    return cudaGetLastError();
}

template <int D>
cudaError_t launch_for(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0, int64_t kv_heads,
                       int64_t group, const int32_t* selected, int64_t first_sparse, int64_t topk, uint16_t* out, cudaStream_t stream) {
    const int64_t qpc = kWarps * (16 / group);
    const int64_t ctas = (tokens + qpc - 1) / qpc;
    const int64_t words = ((pos0 + tokens - 1) / kBlock) / 32 + 1;
    if (ctas > 0x7FFFFFFF || kv_heads > 65535) return cudaErrorInvalidValue;
    const DeviceLimits& lim = device_limits();
    if (const size_t smem = smem_bytes<D>(kStagesPreferred, words); lim.fits_smem(static_cast<int64_t>(smem)))
        return launch_stages<D, kStagesPreferred>(q, k, v, tokens, pos0, kv_heads, group, selected, first_sparse, topk, out, ctas, smem, stream);
    if (const size_t smem = smem_bytes<D>(kStagesFewest, words); lim.fits_smem(static_cast<int64_t>(smem)))
        return launch_stages<D, kStagesFewest>(q, k, v, tokens, pos0, kv_heads, group, selected, first_sparse, topk, out, ctas, smem, stream);
    return cudaErrorInvalidValue;  // not even the smallest ring fits this device
}

}  // namespace

// warp_attention.cu: groups of 16, one warp per query.
cudaError_t launch_query_warp_attention(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0,
                                        int64_t kv_heads, int64_t d, const int32_t* selected, int64_t first_sparse, int64_t topk,
                                        uint16_t* out, cudaStream_t stream);

cudaError_t launch_block_attention(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0,
                                   int64_t kv_heads, int64_t group, int64_t d, const int32_t* selected, int64_t first_sparse,
                                   int64_t topk, uint16_t* out, cudaStream_t stream) {
    if (tokens <= 0) return cudaSuccess;
    if (group < 1 || group > 16 || (16 % group) != 0) return cudaErrorInvalidValue;
    if (tokens > first_sparse && (!selected || topk <= 0)) return cudaErrorInvalidValue;
    if (group == 16) return launch_query_warp_attention(q, k, v, tokens, pos0, kv_heads, d, selected, first_sparse, topk, out, stream);
    if (d == 64) return launch_for<64>(q, k, v, tokens, pos0, kv_heads, group, selected, first_sparse, topk, out, stream);
    if (d == 128) return launch_for<128>(q, k, v, tokens, pos0, kv_heads, group, selected, first_sparse, topk, out, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
