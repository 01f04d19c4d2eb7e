// Lightning (simple GLA, docs/model.md §4) on tensor cores in the chunked form: one CTA per (head, 64
// value columns) walks the 64-token chunks in order with the state slice in registers. Per chunk,
// with exact bf16 q, k, v:
//   A = (q k^T) * decay mask                       -> o  = A v            (A split into bf16 hi + lo)
//   o += gamma^(i+1) q S                            (S split into bf16 hi + lo)
//   S  = gamma^L S + k^T (gamma^(L-1-j) v_j)        (decayed v split into bf16 hi + lo)
// A split operand carries 16 significant bits, so every product keeps ~2^-17 relative accuracy and
// the state stays fp32-accurate (the CPU twin's tolerance); accumulation is fp32 throughout. A
// single token (decode) runs the recurrence in lightning_step.cu instead.
#include "attention_ops.h"
#include "common.cuh"
#include "device_limits.h"
#include "mma.cuh"

namespace quire::kernels {

namespace {

constexpr int kChunk = 64;
constexpr int kCols = 64;  // value columns per CTA
constexpr int kWarps = 4;

template <int D>
struct LightningSmem {
    __nv_bfloat16 q[kChunk * D], k[kChunk * D];  // [token][D], swizzled
    __nv_bfloat16 v[kChunk * kCols];              // [token][col]
    __nv_bfloat16 vh[kChunk * kCols], vl[kChunk * kCols];  // decayed v, hi and lo
    __nv_bfloat16 sh[D * kCols], sl[D * kCols];  // state S_prev [D][col], hi and lo
    float pw[kChunk + 1];                        // gamma^n
};

template <int D>
__global__ void __launch_bounds__(kWarps * 32) lightning_kernel(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                                                const __nv_bfloat16* __restrict__ v, int64_t tokens, int64_t pos0,
                                                                int64_t heads, const double* __restrict__ slopes, float* __restrict__ state,
                                                                __nv_bfloat16* __restrict__ out) {
    constexpr int kChunksD = D / 8, kChunksC = kCols / 8;
    constexpr int kRows = D / kWarps;  // state rows per warp
    constexpr int kMt = kRows / 16;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    LightningSmem<D>& sm = *reinterpret_cast<LightningSmem<D>*>(smem_raw);
    const int64_t h = blockIdx.x;
    const int c0 = blockIdx.y * kCols;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gr = lane >> 2, gc = 2 * (lane & 3);
    float* S = state + h * D * D;
    const float scale = rsqrtf(static_cast<float>(D));
    for (int n = threadIdx.x; n <= kChunk; n += blockDim.x) sm.pw[n] = static_cast<float>(exp(-slopes[h] * n));

    // The state slice: rows warp * kRows .. in registers (C layout), and S_prev as hi/lo in smem.
    float st[kMt][8][4];
    auto publish_state = [&] {
        #pragma unroll
        for (int mt = 0; mt < kMt; ++mt)
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt)
                #pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const int r = warp * kRows + mt * 16 + gr + 8 * hf, c = nt * 8 + gc;
                    float h0, l0, h1, l1;
                    split_bf16(st[mt][nt][2 * hf], h0, l0);
                    split_bf16(st[mt][nt][2 * hf + 1], h1, l1);
                    const int off = swz(r, c / 8, kChunksC) + (c & 7);
                    *reinterpret_cast<uint32_t*>(sm.sh + off) = pack_bf16(h0, h1);
                    *reinterpret_cast<uint32_t*>(sm.sl + off) = pack_bf16(l0, l1);
                }
    };
    // Each register of the warp's state slice with its offset in the head's global state.
    auto for_each_state = [&](auto&& f) {
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = warp * kRows + mt * 16 + gr + 8 * (e >> 1), c = nt * 8 + gc + (e & 1);
                    f(st[mt][nt][e], static_cast<int64_t>(r) * D + c0 + c);
                }
    };
    for_each_state([&](float& x, int64_t at) { x = S[at]; });
    publish_state();

    int64_t t0 = 0;
    while (t0 < tokens) {
        const int len = static_cast<int>(min64(tokens - t0, kChunk - (pos0 + t0) % kChunk));
        for (int idx = threadIdx.x; idx < kChunk * kChunksD; idx += blockDim.x) {
            const int i = idx / kChunksD, c = idx % kChunksD;
            const bool ok = i < len;
            const int64_t off = ok ? ((t0 + i) * heads + h) * D + c * 8 : 0;
            cp_async_16(sm.q + swz(i, c, kChunksD), q + off, ok);
            cp_async_16(sm.k + swz(i, c, kChunksD), k + off, ok);
        }
        for (int idx = threadIdx.x; idx < kChunk * kChunksC; idx += blockDim.x) {
            const int i = idx / kChunksC, c = idx % kChunksC;
            const bool ok = i < len;
            cp_async_16(sm.v + swz(i, c, kChunksC), v + (ok ? ((t0 + i) * heads + h) * D + c0 + c * 8 : 0), ok);
        }
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        for (int idx = threadIdx.x; idx < kChunk * kCols / 2; idx += blockDim.x) {  // decayed v, split
            const int j = idx / (kCols / 2), c = 2 * (idx % (kCols / 2));
            const int off = swz(j, c / 8, kChunksC) + (c & 7);
            const float w = j < len ? sm.pw[len - 1 - j] : 0.0f;
            float h0, l0, h1, l1;
            split_bf16(w * __bfloat162float(sm.v[off]), h0, l0);
            split_bf16(w * __bfloat162float(sm.v[off + 1]), h1, l1);
            *reinterpret_cast<uint32_t*>(sm.vh + off) = pack_bf16(h0, h1);
            *reinterpret_cast<uint32_t*>(sm.vl + off) = pack_bf16(l0, l1);
        }
        __syncthreads();

        // Outputs for chunk rows warp * 16 .. + 15.
        {
            uint32_t qa[D / 16][4];
            #pragma unroll
            for (int ks = 0; ks < D / 16; ++ks)
                ldmatrix_x4(qa[ks], sm.q + swz(warp * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), ks * 2 + (lane >> 4), kChunksD));
            // Inter-chunk part first: o = gamma^(i+1) q S_prev, then the intra-chunk part adds on.
            float o[8][4];
            #pragma unroll
            for (auto& x : o) x[0] = x[1] = x[2] = x[3] = 0.0f;
            #pragma unroll
            for (int ks = 0; ks < D / 16; ++ks)
                #pragma unroll
                for (int dn = 0; dn < 4; ++dn) {
                    uint32_t rh[4], rl[4];
                    const int off = swz(ks * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dn * 2 + (lane >> 4), kChunksC);
                    ldmatrix_x4_trans(rh, sm.sh + off);
                    ldmatrix_x4_trans(rl, sm.sl + off);
                    mma_bf16(o[2 * dn], qa[ks], rh[0], rh[1]);
                    mma_bf16(o[2 * dn + 1], qa[ks], rh[2], rh[3]);
                    mma_bf16(o[2 * dn], qa[ks], rl[0], rl[1]);
                    mma_bf16(o[2 * dn + 1], qa[ks], rl[2], rl[3]);
                }
            #pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const float decay = sm.pw[min(warp * 16 + gr + 8 * hf + 1, kChunk)];
                #pragma unroll
                for (auto& x : o) {
                    x[2 * hf] *= decay;
                    x[2 * hf + 1] *= decay;
                }
            }
            float a[8][4];
            #pragma unroll
            for (auto& x : a) x[0] = x[1] = x[2] = x[3] = 0.0f;
            #pragma unroll
            for (int kp = 0; kp < D / 32; ++kp)
                #pragma unroll
                for (int nt = 0; nt < 8; ++nt) {
                    uint32_t r[4];
                    ldmatrix_x4(r, sm.k + swz(nt * 8 + (lane & 7), kp * 4 + (lane >> 3), kChunksD));
                    mma_bf16(a[nt], qa[2 * kp], r[0], r[1]);
                    mma_bf16(a[nt], qa[2 * kp + 1], r[2], r[3]);
                }
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt)
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int i = warp * 16 + gr + 8 * (e >> 1), j = nt * 8 + gc + (e & 1);
                    a[nt][e] = (j <= i && i < len) ? a[nt][e] * sm.pw[i - j] : 0.0f;
                }
            #pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                uint32_t ah[4], al[4];
                #pragma unroll
                for (int x = 0; x < 4; ++x) {
                    const float* src = a[2 * kk + (x >> 1)] + 2 * (x & 1);
                    float h0, l0, h1, l1;
                    split_bf16(src[0], h0, l0);
                    split_bf16(src[1], h1, l1);
                    ah[x] = pack_bf16(h0, h1);
                    al[x] = pack_bf16(l0, l1);
                }
                #pragma unroll
                for (int dn = 0; dn < 4; ++dn) {
                    uint32_t r[4];
                    ldmatrix_x4_trans(r, sm.v + swz(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dn * 2 + (lane >> 4), kChunksC));
                    mma_bf16(o[2 * dn], ah, r[0], r[1]);
                    mma_bf16(o[2 * dn + 1], ah, r[2], r[3]);
                    mma_bf16(o[2 * dn], al, r[0], r[1]);
                    mma_bf16(o[2 * dn + 1], al, r[2], r[3]);
                }
            }
            #pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int i = warp * 16 + gr + 8 * hf;
                if (i >= len) continue;
                __nv_bfloat16* dst = out + ((t0 + i) * heads + h) * D + c0 + gc;
                #pragma unroll
                for (int nt = 0; nt < 8; ++nt)
                    *reinterpret_cast<uint32_t*>(dst + nt * 8) = pack_bf16(scale * o[nt][2 * hf], scale * o[nt][2 * hf + 1]);
            }
        }
        __syncthreads();  // S_prev is no longer read

        // State update for rows warp * kRows ..: S = gamma^L S + k^T v'.
        const float decay = sm.pw[len];
        #pragma unroll
        for (int mt = 0; mt < kMt; ++mt) {
            #pragma unroll
            for (int nt = 0; nt < 8; ++nt)
                #pragma unroll
                for (int e = 0; e < 4; ++e) st[mt][nt][e] *= decay;
            const int r0 = warp * kRows + mt * 16;
            #pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                uint32_t ka[4];  // A = k^T: rows r0.., columns (tokens) kk * 16 ..
                ldmatrix_x4_trans(ka, sm.k + swz(kk * 16 + ((lane >> 4) & 1) * 8 + (lane & 7), r0 / 8 + ((lane >> 3) & 1), kChunksD));
                #pragma unroll
                for (int dn = 0; dn < 4; ++dn) {
                    uint32_t rh[4], rl[4];
                    const int off = swz(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7), dn * 2 + (lane >> 4), kChunksC);
                    ldmatrix_x4_trans(rh, sm.vh + off);
                    ldmatrix_x4_trans(rl, sm.vl + off);
                    mma_bf16(st[mt][2 * dn], ka, rh[0], rh[1]);
                    mma_bf16(st[mt][2 * dn + 1], ka, rh[2], rh[3]);
                    mma_bf16(st[mt][2 * dn], ka, rl[0], rl[1]);
                    mma_bf16(st[mt][2 * dn + 1], ka, rl[2], rl[3]);
                }
            }
        }
        publish_state();
        __syncthreads();
        t0 += len;
    }
    for_each_state([&](float& x, int64_t at) { S[at] = x; });
}

template <int D>
cudaError_t launch_for(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0, int64_t heads,
                       const double* slopes, float* state, uint16_t* out, cudaStream_t stream) {
    // 88 KB at d = 128: fits the 99 KB of sm_86/89/120 and everything larger; a device with less is
    // refused rather than launched into a failure.
    const size_t smem = sizeof(LightningSmem<D>);
    if (!device_limits().fits_smem(static_cast<int64_t>(smem))) return cudaErrorInvalidValue;
    auto kernel = lightning_kernel<D>;
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)); e != cudaSuccess)
        return e;
    kernel<<<dim3(static_cast<unsigned>(heads), D / kCols), kWarps * 32, smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k), reinterpret_cast<const __nv_bfloat16*>(v),
        tokens, pos0, heads, slopes, state, reinterpret_cast<__nv_bfloat16*>(out));
    return cudaGetLastError();
}

}  // namespace

// lightning_step.cu: one token, the recurrence on CUDA cores.
cudaError_t launch_lightning_step(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t heads, int64_t d, int64_t pos,
                                  const double* slopes, float* state, uint16_t* out, cudaStream_t stream, const LightningHeadNorm* head_norm);

cudaError_t launch_lightning(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t tokens, int64_t pos0,
                             int64_t heads, int64_t dk, int64_t dv, const double* slopes, float* state, uint16_t* out,
                             cudaStream_t stream, const LightningHeadNorm* head_norm) {
    if (tokens <= 0) return cudaSuccess;
    if (dk != dv || heads <= 0 || heads > 0x7FFFFFFF) return cudaErrorInvalidValue;
    if (tokens == 1) return launch_lightning_step(q, k, v, heads, dk, pos0, slopes, state, out, stream, head_norm);  // decode
    if (head_norm) return cudaErrorInvalidValue;  // the chunked kernel reads normalised rows
    if (dk == 64) return launch_for<64>(q, k, v, tokens, pos0, heads, slopes, state, out, stream);
    if (dk == 128) return launch_for<128>(q, k, v, tokens, pos0, heads, slopes, state, out, stream);
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
