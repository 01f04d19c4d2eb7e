#pragma once
// What both top-k block selection kernels share (select_blocks.cu for many queries,
// select_blocks_decode.cu for a few): the order-preserving key of a block score and the count of
// the blocks the selection forces (docs/model.md §3.4-3.5).
#include <cstdint>

#include "common.cuh"

namespace quire::kernels {

// Order-preserving 16-bit key of a score (a bf16 value stored as float): -inf, negatives and NaN
// lowest (0), then +0 and -0 alike and the positive values by magnitude (1 .. 0x7F81, +inf). Its
// high byte is one of 256 radix bins.
__device__ __forceinline__ uint32_t score_key(float x) {
    if (!(x >= 0.0f)) return 0;
    return ((__float_as_uint(x) & 0x7FFFFFFFu) >> 16) + 1;  // -0 passes the test above: drop its sign
}

// The blocks of a query in block qb (blocks 0..qb) that are chosen whatever their scores: the
// first init_blocks, and the local_blocks before qb with qb itself.
struct ForcedBlocks {
    int64_t qb, init_blocks, local_blocks;
    __device__ __forceinline__ bool contains(int64_t b) const { return b < init_blocks || b >= qb - local_blocks; }
    __device__ __forceinline__ int64_t count() const {
        const int64_t nb = qb + 1;
        return min64(init_blocks, nb) + max64(0, qb - max64(init_blocks, qb - local_blocks) + 1);
    }
};

}  // namespace quire::kernels
