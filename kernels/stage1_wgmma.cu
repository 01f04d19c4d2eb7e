// Stage 1 + pooling for GQA groups of 16 on Hopper's warpgroup MMA (wgmma, sm_90a only; the
// portable path is stage1_g16.cu). Same math as stage1_g16.cu (docs/model.md §3.3-3.4): a coarse
// pass over C2 for each head's running max and sum of 2^x, then a fine pass over C1 summing
// 2^(x - m) / z over the group's 16 heads, bf16 rounding and max-pooling over [4b-1, 4b+3].
//
// Layout. A CTA of four warpgroups takes 16 consecutive queries of one KV head: warp w holds query
// t0 + w, its 16 heads being rows 16 (w % 4) .. +15 of its warpgroup's m64 A operand, kept in
// registers in the mma.sync A-fragment layout (which wgmma's register A shares). Each 64-key tile of
// C2 or C1 is the B operand (N = 64) in shared memory, loaded by cp.async into the canonical
// K-major 128-byte-swizzle layout: the head dimension in 64-element halves, each half 64 rows of
// 128 bytes, 16-byte chunk c of row r at chunk c ^ (r % 8) (PTX ISA, "Shared Memory Matrix Layout",
// 128B swizzle: address bits [4:6] ^= bits [7:9], hence tiles aligned to 1024 bytes). One wgmma
// m64n64k16 per 16 elements of the head dimension; its fp32 accumulators land in the mma.sync C
// layout (row l/4 and l/4 + 8 of the warp's 16, columns 8 i + 2 (l % 4) + {0, 1}), so one warp's
// 16 heads x 64 keys are in registers and the epilogue needs no shared memory:
//   - the group sum over heads is a reduce-scatter butterfly over lane bits 2..4 after which lane L
//     holds the sums of keys 2L and 2L + 1;
//   - pooling takes the pair max, the next lane's pair max and the previous lane's second key
//     (lane 0: the previous tile's key 63, carried in a register).
// Blocks the selection forces (Stage1Forced) need no score: the fine pass stops after the last
// block top-k chooses among, and CTAs whose queries take every block return at once.
#include <cfloat>
#include <cstdlib>
#include <cstring>

#include "attention_ops.h"
#include "stage1_tile.cuh"

namespace quire::kernels {

namespace {

// A CTA of kWG warpgroups takes 4 kWG queries (one per warp): 2 warpgroups, two CTAs per SM by
// default (the CTAs step through their tiles independently, which measured faster although each key
// tile is read twice as often); 4 warpgroups, one CTA per SM with QUIRE_STAGE1_WGMMA_CTA=4.
template <int kWG>
constexpr int threads_of() {
    return kWG * 128;
}
constexpr int kTile = kStage1Tile;          // keys per tile: the wgmma's N
constexpr int kHalfBytes = kTile * 128;     // one 64-element half of the head dimension

template <int D>
constexpr int tile_bytes() {
    return kTile * D * 2;
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QUIRE_STAGE1_WGMMA_DEVICE 1
#endif

#ifdef QUIRE_STAGE1_WGMMA_DEVICE
// Byte offset of 16-byte chunk c (8 bf16 of the head dimension) of key row r in a tile.
__device__ __forceinline__ int tile_offset(int r, int c) { return (c >> 3) * kHalfBytes + r * 128 + (((c & 7) ^ (r & 7)) << 4); }

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): start address >> 4 in bits
// 0-13, leading-dimension byte offset >> 4 in 16-29 (unused by a swizzled K-major operand whose K
// extent per instruction, 32 bytes, lies inside one 128-byte row: 1 by convention), stride byte
// offset >> 4 in 32-45 (1024 bytes from one group of 8 rows to the next), base offset 0 in 49-51
// (the tile is 1024-byte aligned), swizzle mode 1 = 128-byte in 62-63.
__device__ __forceinline__ uint64_t tile_descriptor(uint32_t addr) {
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) | (static_cast<uint64_t>(1024 >> 4) << 32) |
           (static_cast<uint64_t>(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Shared memory written through the generic proxy (cp.async) and read next by wgmma (async proxy).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads or writes across the asynchronous MMA.
__device__ __forceinline__ void pin(float (&d)[8][4]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[i][e])::"memory");
}

// d (+)= A (64 x 16, registers, this warp's 16 rows) x B (16 x 64 from the descriptor); d[i][e] is
// accumulator register 4 i + e. accumulate == 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate));
}

// cp.async of entries first .. first + 63 of KV head g (zero-filled at and past count) into the
// swizzled tile, by all kThreads threads; one commit group.
template <int D, int kThreads>
__device__ __forceinline__ void load_tile(unsigned char* dst, const RowSource& src, int64_t first, int64_t count, int64_t kv_heads,
                                          int64_t g) {
    constexpr int kChunks = D / 8, kRowsPerPass = kThreads / kChunks;
    const int64_t width = kv_heads * D;
    const int c = threadIdx.x % kChunks, r0 = threadIdx.x / kChunks;
#pragma unroll
    for (int i = 0; i < kTile / kRowsPerPass; ++i) {
        const int r = r0 + i * kRowsPerPass;
        const bool valid = first + r < count;
        cp_async_16(dst + tile_offset(r, c), src.row(valid ? first + r : 0, width) + g * D + c * 8, valid);
    }
    cp_async_commit();
}

// Fine-pass probabilities of one tile for the warp's query, summed over its 16 heads: element (row
// h, column) is 2^(scale2 s - m[h]) / z[h] (iz = 1 / z), the very expression of stage1_g16.cu, so the
// two kernels differ only by the MMA's rounding; columns >= lim are 0.
template <bool kMasked>
__device__ __forceinline__ void fine_values(const float (&s)[8][4], float scale2, const float (&m)[2], const float (&iz)[2], int lim, int lane,
                                            float (&v)[16]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const float x = fast_exp2(scale2 * s[i][e] - m[0]) * iz[0] + fast_exp2(scale2 * s[i][2 + e] - m[1]) * iz[1];
            v[2 * i + e] = (!kMasked || 8 * i + 2 * (lane & 3) + e < lim) ? x : 0.0f;
        }
}
#endif

// kPart (experiments only, QUIRE_STAGE1_WGMMA_PART): 0 the kernel; 1 the loads and MMAs without the
// epilogues (mma_only); 2 the loads and epilogues without the MMAs, on stale accumulators
// (epilogue_only); both write garbage scores. 3 (raw_scores): the raw products q . C2[j] of the first
// tile, out[(t kv_heads + g) stride + 64 h + j] for head h < 16 and j < 64 (stride >= 1024), for a
// test that checks the MMA's operand layouts directly.
template <int D, int kStages, int kWG, int kPart = 0>
__global__ void __launch_bounds__(threads_of<kWG>(), 4 / kWG) stage1_wgmma_kernel(const __nv_bfloat16* __restrict__ q, const RowSource c1, const RowSource c2,
                                                                   int64_t tokens, int64_t pos0, int64_t kv_heads, int64_t stride,
                                                                   float* __restrict__ block_scores, Stage1Forced forced) {
#ifdef QUIRE_STAGE1_WGMMA_DEVICE
    extern __shared__ __align__(16) unsigned char smem_raw[];
    // Tiles 1024-byte aligned for the swizzle (the launcher adds the slack).
    const uint32_t raw_addr = smem_addr(smem_raw);
    unsigned char* tiles = smem_raw + ((1024 - (raw_addr & 1023)) & 1023);
    const uint32_t tiles_addr = smem_addr(tiles);

    constexpr int kQueries = 4 * kWG;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kQueries, g = blockIdx.y;
    const int64_t t_end = min64(tokens, t0 + kQueries);
    int64_t n1_walk = visible_entries(pos0 + t_end, 32, 16);
    const int64_t n2_max = visible_entries(pos0 + t_end, 128, 64);
    if (forced.local_blocks >= 0) {
        // The CTA's last query has the most blocks; if it takes all of them, so do the others.
        const int64_t qb_last = (pos0 + t_end - 1) / 64;
        if (qb_last + 1 <= forced.topk) return;
        const int64_t b_last = qb_last - forced.local_blocks - 1;  // the highest block top-k chooses among
        if (b_last < forced.init_blocks) return;
        // Blocks up to b_last read entries up to 4 b_last + 3; later tiles only feed forced blocks.
        n1_walk = min64(n1_walk, 4 * b_last + 4);
    }
    const int64_t tiles2 = (n2_max + kTile - 1) / kTile, tiles1 = (n1_walk + kTile - 1) / kTile, total = tiles2 + tiles1;
    const int64_t heads = kv_heads * 16;

    const int64_t tq = t0 + warp;
    const bool ok = tq < t_end;
    const int64_t n1q = visible_entries(pos0 + tq + 1, 32, 16), n2q = visible_entries(pos0 + tq + 1, 128, 64);
    const int row0 = lane >> 2, row1 = row0 + 8;
    uint32_t qa[D / 16][4];
    {
        const __nv_bfloat16* base = q + (tq * heads + g * 16) * D;
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks) {
            const int col = ks * 16 + 2 * (lane & 3);
            qa[ks][0] = ok ? *reinterpret_cast<const uint32_t*>(base + row0 * D + col) : 0u;
            qa[ks][1] = ok ? *reinterpret_cast<const uint32_t*>(base + row1 * D + col) : 0u;
            qa[ks][2] = ok ? *reinterpret_cast<const uint32_t*>(base + row0 * D + col + 8) : 0u;
            qa[ks][3] = ok ? *reinterpret_cast<const uint32_t*>(base + row1 * D + col + 8) : 0u;
        }
    }
    const float scale2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;  // softmax scale, in log2 units
    float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.0f, 0.0f};
    float iz[2] = {0.0f, 0.0f};  // 1 / z once the coarse pass is done
    bool has_coarse = false;
    float carry = -INFINITY;  // the previous fine tile's pooled key 63 (entry 4b - 1 of its first block)

    auto issue = [&](int64_t u) {
        if (u >= total) {
            cp_async_commit();  // an empty group keeps the wait count uniform
            return;
        }
        unsigned char* dst = tiles + (u % kStages) * tile_bytes<D>();
        if (u < tiles2) load_tile<D, threads_of<kWG>()>(dst, c2, u * kTile, n2_max, kv_heads, g);
        else load_tile<D, threads_of<kWG>()>(dst, c1, (u - tiles2) * kTile, n1_walk, kv_heads, g);
    };
#pragma unroll
    for (int u = 0; u < kStages - 1; ++u) issue(u);

    float s[8][4] = {};  // accumulators: written by the wgmma of each tile, then by its epilogue
    [[maybe_unused]] float sink = 0.0f;
    for (int64_t u = 0; u < total; ++u) {
        // Tile u is group u of the (kStages - 1) + u committed so far. One barrier per tile: past it,
        // this thread's part of tile u is visible to the async proxy and to every thread, and every
        // warpgroup has finished tile u - 1, so its stage takes tile u + kStages - 1.
        cp_async_wait<kStages - 2>();
        fence_proxy_async();
        __syncthreads();
        issue(u + kStages - 1);
        const bool coarse = u < tiles2;
        const int64_t e0 = (coarse ? u : u - tiles2) * kTile;
        if (!coarse && e0 == 0) {
            has_coarse = m[0] != -INFINITY && z[0] > 0.0f;
#pragma unroll
            for (int h = 0; h < 2; ++h) iz[h] = has_coarse ? 1.0f / z[h] : 0.0f;
        }
        if constexpr (kPart != 2) {
            const uint32_t stage = tiles_addr + static_cast<uint32_t>((u % kStages) * tile_bytes<D>());
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < D / 16; ++ks)
                wgmma_m64n64k16(s, qa[ks], tile_descriptor(stage + (ks >> 2) * kHalfBytes + (ks & 3) * 32), ks);
            wgmma_commit();
            wgmma_wait_all();
            pin(s);
        }
        if constexpr (kPart == 3) {
            if (ok)
#pragma unroll
                for (int i = 0; i < 8; ++i)
#pragma unroll
                    for (int e = 0; e < 4; ++e)
                        block_scores[(tq * kv_heads + g) * stride + 64 * (row0 + 8 * (e >> 1)) + 8 * i + 2 * (lane & 3) + (e & 1)] = s[i][e];
            break;
        }
        if constexpr (kPart == 1) {
            sink += s[0][0] + s[7][3];  // keeps the MMAs alive
            continue;
        }
        // Entries of this tile the warp's query sees (warp-uniform).
        const int64_t vis = coarse ? n2q : (has_coarse ? n1q : 0);
        const int lim = ok ? static_cast<int>(max64(0, min64(kTile, vis - e0))) : 0;
        if (coarse) {
            stage1_coarse_update<8>(s, 0, lim, lane, scale2, m, z);
        } else {
            float v[16];
            if (lim >= kTile) fine_values<false>(s, scale2, m, iz, lim, lane, v);
            else fine_values<true>(s, scale2, m, iz, lim, lane, v);
            float k0, k1;
            stage1_group_sum_scatter(v, lane, k0, k1);
            k0 = round_bf(k0);
            k1 = round_bf(k1);
            // Block kb of the tile = max(key 4kb - 1, keys 4kb .. 4kb + 3): lanes 2kb - 1 (its second
            // key), 2kb and 2kb + 1.
            const float pair = fmaxf(k0, k1);
            const float next_pair = __shfl_down_sync(0xffffffffu, pair, 1);
            const float before = __shfl_up_sync(0xffffffffu, k1, 1);
            const float block = fmaxf(fmaxf(pair, next_pair), lane == 0 ? carry : before);
            carry = __shfl_sync(0xffffffffu, k1, 31);
            const int64_t b = e0 / 4 + lane / 2;
            if (ok && !(lane & 1) && b <= (pos0 + tq) / 64) block_scores[(tq * kv_heads + g) * stride + b] = block;
        }
    }
    cp_async_wait<0>();  // the empty groups
    if constexpr (kPart == 1)
        if (sink == 1.0e30f) block_scores[0] = sink;
    if constexpr (kPart == 3) return;
    // Blocks past the last tile: the first still sees the carried key; later ones see nothing (or
    // are forced and unread).
    if (ok) {
        const int64_t qb = (pos0 + tq) / 64;
        for (int64_t b = tiles1 * 16 + lane; b <= qb; b += 32)
            block_scores[(tq * kv_heads + g) * stride + b] = b == tiles1 * 16 ? carry : -INFINITY;
    }
#endif
}

template <int D, int kStages, int kWG, int kPart = 0>
cudaError_t launch_stages(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                          int64_t stride, float* block_scores, const Stage1Forced& forced, cudaStream_t stream) {
    const int64_t ctas = (tokens + 4 * kWG - 1) / (4 * kWG);
    const size_t smem = static_cast<size_t>(kStages) * tile_bytes<D>() + 1024;
    if (ctas > 0x7FFFFFFF || kv_heads > 65535) return cudaErrorInvalidValue;
    auto kernel = stage1_wgmma_kernel<D, kStages, kWG, kPart>;
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)); e != cudaSuccess)
        return e;
    kernel<<<dim3(static_cast<unsigned>(ctas), static_cast<unsigned>(kv_heads)), threads_of<kWG>(), smem, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(q), c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced);
    return cudaGetLastError();
}

}  // namespace

// Shared memory the wgmma kernel needs with `stages` tiles in flight (stage1_dispatch.cu picks the
// deepest ring that fits).
int64_t stage1_wgmma_smem_bytes(int64_t d, int stages) { return static_cast<int64_t>(stages) * kTile * d * 2 + 1024; }

cudaError_t launch_stage1_wgmma(const uint16_t* q, const RowSource& c1, const RowSource& c2, int64_t tokens, int64_t pos0, int64_t kv_heads,
                                int64_t d, int64_t stride, float* block_scores, int stages, const Stage1Forced& forced, cudaStream_t stream) {
    // Two CTAs of 2 warpgroups per SM by default (H200, last 8192-token chunk of a 1M prefill: 17.4 ms
    // against 18.5 ms for one CTA of 4); QUIRE_STAGE1_WGMMA_CTA=4 for one CTA of 4.
    const char* cta = std::getenv("QUIRE_STAGE1_WGMMA_CTA");
    const bool two = !(cta && std::strcmp(cta, "4") == 0);
    // Experiments (test_gpu_stage1): the default shape with a stage left out, or the raw products.
    if (const char* part = std::getenv("QUIRE_STAGE1_WGMMA_PART"); part && d == 128 && stages == 4 && two) {
        if (std::strcmp(part, "mma_only") == 0)
            return launch_stages<128, 4, 2, 1>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream);
        if (std::strcmp(part, "epilogue_only") == 0)
            return launch_stages<128, 4, 2, 2>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream);
        if (std::strcmp(part, "raw_scores") == 0) {
            if (stride < 1024) return cudaErrorInvalidValue;
            return launch_stages<128, 4, 2, 3>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream);
        }
    }
#define QUIRE_STAGE1_WGMMA_CASE(DD, SS)                                                                                       \
    if (d == DD && stages == SS)                                                                                              \
        return two ? launch_stages<DD, SS, 2>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream)       \
                   : launch_stages<DD, SS, 4>(q, c1, c2, tokens, pos0, kv_heads, stride, block_scores, forced, stream);
    QUIRE_STAGE1_WGMMA_CASE(128, 4)
    QUIRE_STAGE1_WGMMA_CASE(128, 2)
    QUIRE_STAGE1_WGMMA_CASE(64, 4)
    QUIRE_STAGE1_WGMMA_CASE(64, 2)
#undef QUIRE_STAGE1_WGMMA_CASE
    return cudaErrorInvalidValue;
}

}  // namespace quire::kernels
