#include "sala_geometry.h"

#include <algorithm>

namespace quire {

SparseGeometry SparseGeometry::from(const ModelConfig& c) {
    SparseGeometry g;
    g.kv_heads = c.num_key_value_heads;
    g.head_dim = c.head_dim;
    g.group = c.gqa_group();
    g.block = c.sparse.block_size;
    g.c1_kernel = c.sparse.kernel_size;
    g.c1_stride = c.sparse.kernel_stride;
    g.c2_kernel = c.sparse.c2_kernel();
    g.c2_stride = c.sparse.c2_stride();
    g.init_blocks = c.sparse.init_blocks;
    g.local_blocks = c.sparse.local_blocks();
    g.total_topk = c.sparse.effective_topk();
    g.dense_len = c.sparse.dense_len;
    return g;
}

int64_t first_sparse_query(const SparseGeometry& g, RegimeRule rule, int64_t pos0, int64_t n, int64_t request_end) {
    if (rule == RegimeRule::per_request) return request_end >= g.dense_len ? 0 : n;
    // per_query: the query at position p is sparse iff p + 1 >= dense_len.
    return std::clamp<int64_t>(g.dense_len - 1 - pos0, 0, n);
}

}  // namespace quire
