#pragma once
// Warp-level tensor-core helpers (sm_80+ mma.sync, ldmatrix, cp.async) shared by the attention,
// stage-1 and Lightning kernels. Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix fragments"):
//   A (16x16, row-major): a0 = (row l/4, k 2(l%4)..+1), a1 = row+8, a2 = k+8, a3 = row+8 and k+8
//   B (16x8, "col"):      b0 = (k 2(l%4)..+1, n l/4),     b1 = k+8
//   C (16x8, fp32):       c0,c1 = (row l/4, n 2(l%4)..+1), c2,c3 = row+8
// Shared-memory tiles are rows of 16-byte chunks, chunk c of row r stored at c ^ (r % 8) so that
// the eight row addresses of one ldmatrix hit eight different bank groups.

#include <cuda_bf16.h>

#include <cstdint>

namespace quire::kernels {

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// 16 bytes global -> shared, asynchronously; with valid == false the destination is zero-filled
// and nothing is read.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Two floats as a bf16 pair (round to nearest even), the lower column in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}
// fp32 x = hi + lo with both bf16 (16 significant bits together): products of a split operand
// with an exact bf16 operand keep ~2^-17 relative accuracy, enough for the fp32 Lightning state.
__device__ __forceinline__ void split_bf16(float x, float& hi, float& lo) {
    hi = __bfloat162float(__float2bfloat16_rn(x));
    lo = x - hi;
}

// Element offset of chunk `chunk` (8 bf16) of row `row` in a swizzled tile of `chunks` per row.
__device__ __forceinline__ int swz(int row, int chunk, int chunks) { return (row * chunks + (chunk ^ (row & 7))) * 8; }

}  // namespace quire::kernels
