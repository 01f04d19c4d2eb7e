// Block attention for a few queries (decode, model-spec §3.7 and §3.1) split over the blocks, as in
// flash-decoding: the main kernel gives a query's 16 heads (one KV group, one m16 MMA tile) a few
// CTAs, each one warp walking a share of the block list; a CTA writes its running max, sum and
// unnormalised output, and the combine kernel merges the shares. The prefill kernel
// (block_attention.cu) would give the query a single CTA walking all ~96 blocks in turn.
#include <cfloat>

#include "attention_ops.h"
#include "common.cuh"
#include "mma.cuh"

namespace quire::kernels {

namespace {

constexpr int kBlock = 64;
constexpr int kSplits = 24;  // CTAs per (query, KV group): 48 with two groups, enough to fill the memory system

// Block `ordinal` of query t's list (dense: 0..qb; sparse: its selection), -1 past the end.
__device__ __forceinline__ int64_t list_block(const int32_t* list, int64_t qb, int64_t topk, int64_t ordinal) {
    if (!list) return ordinal <= qb ? ordinal : -1;
    return ordinal < topk ? list[ordinal] : -1;
}

template <int D>
__global__ void __launch_bounds__(32) decode_attention_kernel(const __nv_bfloat16* __restrict__ q, const RowSource k, const RowSource v, int64_t tokens, int64_t pos0,
                                                              int64_t kv_heads, const int32_t* __restrict__ selected, int64_t first_sparse,
                                                              int64_t topk, float* __restrict__ partial) {
    constexpr int kChunks = D / 8;
    __shared__ __align__(16) __nv_bfloat16 ks[kBlock * D], vs[kBlock * D];
    const int lane = threadIdx.x;
    const int64_t item = blockIdx.y, split = blockIdx.x;
    const int64_t t = item / kv_heads, g = item % kv_heads, p = pos0 + t, qb = p / kBlock;
    const int64_t n_keys = pos0 + tokens;
    const int32_t* list = t >= first_sparse ? selected + ((t - first_sparse) * kv_heads + g) * topk : nullptr;
    const int64_t count = list ? topk : qb + 1;
    const int64_t per = (count + kSplits - 1) / kSplits;
    const int64_t first = split * per, last = min64(count, first + per);

    const int row0 = lane >> 2, row1 = row0 + 8;
    const __nv_bfloat16* qrow = q + (t * kv_heads + g) * 16 * D;
    uint32_t qa[D / 16][4];
#pragma unroll
    for (int s = 0; s < D / 16; ++s) {
        const int col = s * 16 + 2 * (lane & 3);
        qa[s][0] = *reinterpret_cast<const uint32_t*>(qrow + row0 * D + col);
        qa[s][1] = *reinterpret_cast<const uint32_t*>(qrow + row1 * D + col);
        qa[s][2] = *reinterpret_cast<const uint32_t*>(qrow + row0 * D + col + 8);
        qa[s][3] = *reinterpret_cast<const uint32_t*>(qrow + row1 * D + col + 8);
    }
    const float scale = rsqrtf(static_cast<float>(D));
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    float acc[D / 8][4];
#pragma unroll
    for (auto& a : acc) a[0] = a[1] = a[2] = a[3] = 0.0f;

    for (int64_t o = first; o < last; ++o) {
        const int64_t b = list_block(list, qb, topk, o);
        if (b < 0) break;
        for (int idx = lane; idx < kBlock * kChunks; idx += 32) {
            const int r = idx / kChunks, c = idx % kChunks;
            const int64_t key = b * kBlock + r;
            const bool valid = key < n_keys;
            const int64_t row = valid ? key : 0, off = g * D + c * 8;
            cp_async_16(ks + swz(r, c, kChunks), k.row(row, kv_heads * D) + off, valid);
            cp_async_16(vs + swz(r, c, kChunks), v.row(row, kv_heads * D) + off, valid);
        }
        cp_async_commit();
        cp_async_wait<0>();
        __syncwarp();
        float s[8][4];
#pragma unroll
        for (auto& x : s) x[0] = x[1] = x[2] = x[3] = 0.0f;
#pragma unroll
        for (int kp = 0; kp < D / 32; ++kp)
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                uint32_t r[4];
                ldmatrix_x4(r, ks + swz(nt * 8 + (lane & 7), kp * 4 + (lane >> 3), kChunks));
                mma_bf16(s[nt], qa[2 * kp], r[0], r[1]);
                mma_bf16(s[nt], qa[2 * kp + 1], r[2], r[3]);
            }
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int64_t key = b * kBlock + nt * 8 + 2 * (lane & 3) + (e & 1);
                s[nt][e] = key <= p ? s[nt][e] * scale : -INFINITY;
                mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
            }
        float corr[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            const float mn = fmaxf(m[h], mx[h]);
            corr[h] = mn == -INFINITY ? 1.0f : __expf(m[h] - mn);
            m[h] = mn;
        }
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int h = e >> 1;
                s[nt][e] = m[h] == -INFINITY ? 0.0f : __expf(s[nt][e] - m[h]);
                sum[h] += s[nt][e];
            }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 1);
            sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 2);
            l[h] = l[h] * corr[h] + sum[h];
        }
#pragma unroll
        for (auto& a : acc) {
            a[0] *= corr[0];
            a[1] *= corr[0];
            a[2] *= corr[1];
            a[3] *= corr[1];
        }
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dn = 0; dn < D / 16; ++dn) {
                uint32_t r[4];
                ldmatrix_x4_trans(r, vs + swz(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dn * 2 + (lane >> 4), kChunks));
                mma_bf16(acc[2 * dn], pa, r[0], r[1]);
                mma_bf16(acc[2 * dn + 1], pa, r[2], r[3]);
            }
        }
        __syncwarp();  // the buffers are read before the next block's load
    }
    // This share: per row its max, sum and unnormalised output.
    float* out = partial + (item * kSplits + split) * (16 * D + 32);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = h ? row1 : row0;
        if ((lane & 3) == 0) {
            out[16 * D + row] = m[h];
            out[16 * D + 16 + row] = l[h];
        }
#pragma unroll
        for (int dn = 0; dn < D / 8; ++dn) {
            out[row * D + dn * 8 + 2 * (lane & 3)] = acc[dn][2 * h];
            out[row * D + dn * 8 + 2 * (lane & 3) + 1] = acc[dn][2 * h + 1];
        }
    }
}

// One CTA per (query, KV group), one thread per (row, column): merges the shares.
template <int D>
__global__ void combine_kernel(const float* __restrict__ partial, int64_t kv_heads, __nv_bfloat16* __restrict__ out) {
    const int64_t item = blockIdx.x;
    const float* base = partial + item * kSplits * (16 * D + 32);
    for (int idx = threadIdx.x; idx < 16 * D; idx += blockDim.x) {
        const int row = idx / D;
        float mx = -INFINITY;
        for (int s = 0; s < kSplits; ++s) mx = fmaxf(mx, base[s * (16 * D + 32) + 16 * D + row]);
        float sum = 0.0f, o = 0.0f;
        for (int s = 0; s < kSplits; ++s) {
            const float* sh = base + s * (16 * D + 32);
            const float ms = sh[16 * D + row];
            if (ms == -INFINITY) continue;
            const float w = __expf(ms - mx);
            sum += sh[16 * D + 16 + row] * w;
            o += sh[idx] * w;
        }
        const int64_t t = item / kv_heads, g = item % kv_heads;
        out[(t * kv_heads + g) * 16 * D + idx] = to_bf(sum > 0.0f ? o / sum : 0.0f);
    }
}

template <int D>
cudaError_t launch_decode(const uint16_t* q, const RowSource& k, const RowSource& v, int64_t tokens, int64_t pos0, int64_t kv_heads,
                          const int32_t* selected, int64_t first_sparse, int64_t topk, float* scratch, uint16_t* out, cudaStream_t stream) {
    const int64_t items = tokens * kv_heads;
    decode_attention_kernel<D><<<dim3(kSplits, static_cast<unsigned>(items)), 32, 0, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, scratch);
    combine_kernel<D><<<static_cast<unsigned>(items), 256, 0, stream>>>(scratch, kv_heads, reinterpret_cast<__nv_bfloat16*>(out));
    return cudaGetLastError();
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
    if (d == 64) return launch_decode<64>(q, k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, scratch, out, stream);
    if (d == 128) return launch_decode<128>(q, k, v, tokens, pos0, kv_heads, selected, first_sparse, topk, scratch, out, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
