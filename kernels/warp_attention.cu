// Block attention with one warp per (query, KV group) (docs/model.md §3.1, §3.6, §3.7): the group's 16
// heads are the rows of one m16 MMA tile and the warp walks the query's own block list in 32-key
// units through a private ring of cp.async buffers, with no barrier shared with other warps — a
// block that only this query selected keeps no one else waiting (the CTA-union kernel in
// block_attention.cu, used for groups below 16, does). Forced blocks that neighbouring queries share
// are read by each of them, mostly from L2.
//   prefill: one warp walks the whole list and writes the output;
//   decode:  kSplits warps share a list (flash-decoding); each writes its running max, sum and
//            unnormalised output, and combine_kernel merges them.
#include <cfloat>

#include "attention_ops.h"
#include "attention_tile.cuh"
#include "device_limits.h"
#include "pdl_launch.h"

namespace quire::kernels {

namespace {

constexpr int kBlock = 64;
constexpr int kUnit = 32;    // keys per ring stage (half a block)
#ifndef QUIRE_WARP_ATTENTION_STAGES
#define QUIRE_WARP_ATTENTION_STAGES 2
#endif
constexpr int kStages = QUIRE_WARP_ATTENTION_STAGES;  // ring depth (2 measured faster than 3 on an H100: more warps per SM)
// Decode: warps per (query, KV group). 96 give each warp one of the 96 selected blocks (192 warps with
// two groups); 24 left 4 blocks to each of 48 warps, one 32-key unit in flight at a time, and took
// ~37 µs a layer at 1M on the H200.
constexpr int kSplits = kDecodeAttentionSplits;

// Block `ordinal` of query t's list (dense: 0..qb; sparse: its selection), -1 past the end.
__device__ __forceinline__ int64_t list_block(const int32_t* list, int64_t qb, int64_t topk, int64_t ordinal) {
    if (!list) return ordinal <= qb ? ordinal : -1;
    return ordinal < topk ? list[ordinal] : -1;
}

// Keys first .. first + 31 of K and V (zero past n_keys) into one ring stage, by the warp.
template <int D>
__device__ __forceinline__ void load_unit(__nv_bfloat16* ks, __nv_bfloat16* vs, const RowSource& k, const RowSource& v, int64_t first,
                                          int64_t n_keys, int64_t width, int64_t g, int lane) {
    constexpr int kChunks = D / 8, kRowsPerPass = 32 / kChunks;
    const int c = lane % kChunks, r0 = lane / kChunks;
    if (first + kUnit <= n_keys && !(k.split > first && k.split < first + kUnit)) {
        const uint16_t* kp = k.row(first + r0, width) + g * D + c * 8;
        const uint16_t* vp = v.row(first + r0, width) + g * D + c * 8;
#pragma unroll
        for (int i = 0; i < kUnit / kRowsPerPass; ++i) {
            const int r = r0 + i * kRowsPerPass;
            cp_async_16(ks + swz(r, c, kChunks), kp + i * kRowsPerPass * width, true);
            cp_async_16(vs + swz(r, c, kChunks), vp + i * kRowsPerPass * width, true);
        }
    } else {
        for (int i = 0; i < kUnit / kRowsPerPass; ++i) {
            const int r = r0 + i * kRowsPerPass;
            const bool valid = first + r < n_keys;
            const int64_t row = valid ? first + r : 0;
            cp_async_16(ks + swz(r, c, kChunks), k.row(row, width) + g * D + c * 8, valid);
            cp_async_16(vs + swz(r, c, kChunks), v.row(row, width) + g * D + c * 8, valid);
        }
    }
}

// Split mode (splits > 1): partial results for the combine kernel; else the output directly.
template <int D>
__global__ void __launch_bounds__(32) warp_attention_kernel(const __nv_bfloat16* __restrict__ q, const RowSource k, const RowSource v,
                                                            int64_t tokens, int64_t pos0, int64_t kv_heads, const int32_t* __restrict__ selected,
                                                            int64_t first_sparse, int64_t topk, int splits, float* __restrict__ partial,
                                                            __nv_bfloat16* __restrict__ out) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();
    __nv_bfloat16* ring = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [kStages][K, V][kUnit][D]
    const int lane = threadIdx.x;
    const int64_t item = blockIdx.x, split = blockIdx.y;
    const int64_t t = item / kv_heads, g = item % kv_heads, p = pos0 + t, qb = p / kBlock;
    const int64_t n_keys = pos0 + tokens, width = kv_heads * D;
    const int32_t* list = t >= first_sparse ? selected + ((t - first_sparse) * kv_heads + g) * topk : nullptr;
    int64_t count = list ? topk : qb + 1;
    if (list)
        while (count > 0 && list[count - 1] < 0) --count;
    const int64_t per = (count + splits - 1) / splits;
    const int64_t first_block = split * per, last_block = min64(count, first_block + per);
    const int64_t units = 2 * max64(0, last_block - first_block);
    auto unit_key = [&](int64_t u) { return list_block(list, qb, topk, first_block + u / 2) * kBlock + (u & 1) * kUnit; };

    const int row0 = lane >> 2, row1 = row0 + 8;
    uint32_t qa[D / 16][4];
    load_group_rows<D>(q + (t * kv_heads + g) * 16 * D, lane, qa);
    const float scale = rsqrtf(static_cast<float>(D));
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    float acc[D / 8][4];
#pragma unroll
    for (auto& a : acc) a[0] = a[1] = a[2] = a[3] = 0.0f;

    auto issue = [&](int64_t u) {
        if (u < units) {
            __nv_bfloat16* ks = ring + (u % kStages) * 2 * kUnit * D;
            load_unit<D>(ks, ks + kUnit * D, k, v, unit_key(u), n_keys, width, g, lane);
        }
        cp_async_commit();  // possibly empty: one group per unit keeps the wait count fixed
    };
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) issue(s);
    for (int64_t u = 0; u < units; ++u) {
        issue(u + kStages - 1);
        cp_async_wait<kStages - 1>();
        __syncwarp();
        const __nv_bfloat16* ks = ring + (u % kStages) * 2 * kUnit * D;
        const __nv_bfloat16* vs = ks + kUnit * D;
        const int64_t first = unit_key(u);
        const int lim = static_cast<int>(min64(kUnit, max64(0, p - first + 1)));  // keys of the unit at or before p
        if (lim > 0) {
            float s[4][4];
            attention_scores<D, 4>(qa, ks, lane, s);
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[nt][e] = nt * 8 + 2 * (lane & 3) + (e & 1) < lim ? s[nt][e] * scale : -INFINITY;
            softmax_update<D, 4>(s, m, l, acc);
            accumulate_pv<D, 4>(s, vs, lane, acc);
        }
        __syncwarp();  // the stage is read before the load that reuses it
    }
    cp_async_wait<0>();

    if (splits == 1) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = h ? row1 : row0;
            const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
            __nv_bfloat16* dst = out + ((t * kv_heads + g) * 16 + row) * D + 2 * (lane & 3);
#pragma unroll
            for (int dn = 0; dn < D / 8; ++dn)
                *reinterpret_cast<uint32_t*>(dst + dn * 8) = pack_bf16(acc[dn][2 * h] * inv, acc[dn][2 * h + 1] * inv);
        }
        return;
    }
    float* part = partial + (item * splits + split) * (16 * D + 32);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = h ? row1 : row0;
        if ((lane & 3) == 0) {
            part[16 * D + row] = m[h];
            part[16 * D + 16 + row] = l[h];
        }
#pragma unroll
        for (int dn = 0; dn < D / 8; ++dn) {
            part[row * D + dn * 8 + 2 * (lane & 3)] = acc[dn][2 * h];
            part[row * D + dn * 8 + 2 * (lane & 3) + 1] = acc[dn][2 * h + 1];
        }
    }
}

// One CTA per (query, KV group, head row), one thread per column: merges the shares. Every load is
// issued at once (a thread's 96 partial outputs, and one share's max and sum per thread), then the
// shares are added in share order as before: walking the shares one load at a time took ~18 µs a
// layer (ncu, H200, 1M).
template <int D>
__global__ void __launch_bounds__(D) combine_kernel(const float* __restrict__ partial, int64_t kv_heads, __nv_bfloat16* __restrict__ out) {
    __shared__ float share_max[kSplits], share_sum[kSplits], share_weight[kSplits];
    __shared__ float warp_max[D / 32];
    pdl_wait();  // launched as a programmatic dependent launch (pdl_launch.h)
    pdl_launch_dependents();  // the o projection after it may start reading its weights
    const int64_t item = blockIdx.x;
    const int row = blockIdx.y, col = threadIdx.x;
    constexpr int64_t kShare = 16 * D + 32;
    const float* base = partial + item * kSplits * kShare;
    float o_part[kSplits];
#pragma unroll
    for (int s = 0; s < kSplits; ++s) o_part[s] = base[s * kShare + row * D + col];
    float mx = -INFINITY;
    for (int s = col; s < kSplits; s += D) {
        share_max[s] = base[s * kShare + 16 * D + row];
        share_sum[s] = base[s * kShare + 16 * D + 16 + row];
        mx = fmaxf(mx, share_max[s]);
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (col % 32 == 0) warp_max[col / 32] = mx;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < D / 32; ++w) mx = fmaxf(mx, warp_max[w]);
    for (int s = col; s < kSplits; s += D) share_weight[s] = share_max[s] == -INFINITY ? 0.0f : __expf(share_max[s] - mx);
    __syncthreads();
    float sum = 0.0f, o = 0.0f;
#pragma unroll
    for (int s = 0; s < kSplits; ++s) {
        if (share_max[s] == -INFINITY) continue;  // an empty share
        const float w = share_weight[s];
        sum += share_sum[s] * w;
        o += o_part[s] * w;
    }
    const int64_t t = item / kv_heads, g = item % kv_heads;
    out[((t * kv_heads + g) * 16 + row) * D + col] = to_bf(sum > 0.0f ? o / sum : 0.0f);
}

template <int D>
cudaError_t launch_warps(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0, int64_t kv_heads,
                         const int32_t* selected, int64_t first_sparse, int64_t topk, int splits, float* scratch, uint16_t* out,
                         cudaStream_t stream) {
    const int64_t items = tokens * kv_heads;
    if (items <= 0) return cudaSuccess;
    if (items > 0x7FFFFFFF) return cudaErrorInvalidValue;
    const size_t smem = sizeof(__nv_bfloat16) * kStages * 2 * kUnit * D;  // 32 KB at d = 128: fits every supported card
    if (!device_limits().fits_smem(static_cast<int64_t>(smem))) return cudaErrorInvalidValue;
    auto kernel = warp_attention_kernel<D>;
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)); e != cudaSuccess)
        return e;
    return launch_pdl(kernel, dim3(static_cast<unsigned>(items), static_cast<unsigned>(splits)), 32, smem, stream,
                      reinterpret_cast<const __nv_bfloat16*>(q), k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, splits, scratch,
                      reinterpret_cast<__nv_bfloat16*>(out));
}

}  // namespace

bool decode_attention_applies(int64_t tokens, int64_t kv_heads, int64_t group) { return group == 16 && tokens * kv_heads <= 8; }

int64_t decode_attention_scratch_floats(int64_t tokens, int64_t kv_heads, int64_t group, int64_t d) {
    if (!decode_attention_applies(tokens, kv_heads, group)) return 0;
    return tokens * kv_heads * kSplits * (16 * d + 32);
}

cudaError_t launch_decode_attention(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0, int64_t kv_heads,
                                    int64_t d, const int32_t* selected, int64_t first_sparse, int64_t topk, float* scratch, uint16_t* out,
                                    cudaStream_t stream) {
    cudaError_t e = cudaErrorInvalidValue;
    if (d == 64) e = launch_warps<64>(q, k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, kSplits, scratch, out, stream);
    if (d == 128) e = launch_warps<128>(q, k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, kSplits, scratch, out, stream);
    if (e != cudaSuccess) return e;
    const dim3 grid(static_cast<unsigned>(tokens * kv_heads), 16);
    if (d == 64) return launch_pdl(combine_kernel<64>, grid, 64, 0, stream, scratch, kv_heads, reinterpret_cast<__nv_bfloat16*>(out));
    return launch_pdl(combine_kernel<128>, grid, 128, 0, stream, scratch, kv_heads, reinterpret_cast<__nv_bfloat16*>(out));
}

cudaError_t launch_query_warp_attention(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0,
                                        int64_t kv_heads, int64_t d, const int32_t* selected, int64_t first_sparse, int64_t topk,
                                        uint16_t* out, cudaStream_t stream) {
    if (d == 64) return launch_warps<64>(q, k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, 1, nullptr, out, stream);
    if (d == 128) return launch_warps<128>(q, k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, 1, nullptr, out, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
