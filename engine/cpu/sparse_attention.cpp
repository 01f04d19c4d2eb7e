#include "cpu/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bf16.h"
#include "cpu/vec_math.h"

namespace quire::cpu {

void attend_tile(std::vector<TileQuery>& queries, const SparseLayerState& state, int64_t kv, const SparseGeometry& g,
                 bool round) {
    const int64_t d = g.head_dim, G = g.group, width = state.k.width(), B = g.block;
    const float s = 1.0f / std::sqrt(static_cast<float>(d));
    const auto nq = static_cast<int64_t>(queries.size());
    // Running max, sum and output accumulator per (query, head).
    thread_local std::vector<float> m, l, acc, sc, kt;
    thread_local std::vector<size_t> cursor;
    m.assign(static_cast<size_t>(nq * G), -std::numeric_limits<float>::infinity());
    l.assign(static_cast<size_t>(nq * G), 0.0f);
    acc.assign(static_cast<size_t>(nq * G * d), 0.0f);
    sc.resize(static_cast<size_t>(G * B));
    kt.resize(static_cast<size_t>(d * B));
    cursor.assign(static_cast<size_t>(nq), 0);
    std::vector<int64_t> all;
    for (const auto& q : queries) all.insert(all.end(), q.blocks.begin(), q.blocks.end());
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    for (int64_t b : all) {
        const float* vpage = state.v.page(b) + kv * d;
        const int64_t filled = std::min(B, state.k.size() - b * B);
        transpose_block64(state.k.page(b) + kv * d, width, filled, d, kt.data());
        for (int64_t qi = 0; qi < nq; ++qi) {
            TileQuery& q = queries[static_cast<size_t>(qi)];
            size_t& c = cursor[static_cast<size_t>(qi)];
            if (c >= q.blocks.size() || q.blocks[c] != b) continue;
            ++c;
            const int64_t rows = std::min(q.p, b * B + B - 1) - b * B + 1;
            qk_block_t64(q.q_group, G, d, kt.data(), s, sc.data(), B);
            for (int64_t h = 0; h < G; ++h) {
                float* row = sc.data() + h * B;
                const size_t i = static_cast<size_t>(qi * G + h);
                float mx = m[i];
                for (int64_t r = 0; r < rows; ++r) mx = std::max(mx, row[r]);
                const float correction = std::exp(m[i] - mx);  // 0 on the first block (m = -inf)
                float sum = 0.0f;
                for (int64_t r = 0; r < rows; ++r) {
                    row[r] = std::exp(row[r] - mx);
                    sum += row[r];
                }
                l[i] = l[i] * correction + sum;
                m[i] = mx;
                float* a = acc.data() + i * d;
                scale(a, correction, d);
            }
            pv_block(sc.data(), B, G, vpage, width, rows, d, acc.data() + qi * G * d);
        }
    }
    for (int64_t qi = 0; qi < nq; ++qi)
        for (int64_t h = 0; h < G; ++h) {
            const size_t i = static_cast<size_t>(qi * G + h);
            const float inv = 1.0f / l[i];
            float* o = queries[static_cast<size_t>(qi)].out_group + h * d;
            const float* a = acc.data() + i * d;
            for (int64_t c = 0; c < d; ++c) o[c] = round ? round_bf16(a[c] * inv) : a[c] * inv;
        }
}

std::vector<std::vector<int64_t>> select_sparse_blocks(ThreadPool& pool, const float* q, int64_t tokens, int64_t pos0,
                                                       int64_t first_sparse, const SparseLayerState& state, const SparseGeometry& g,
                                                       bool round, const SelectionProbe* probe) {
    const int64_t heads = g.kv_heads * g.group, d = g.head_dim;
    const int64_t count = std::max<int64_t>(0, tokens - first_sparse);
    std::vector<std::vector<int64_t>> selected(static_cast<size_t>(count * g.kv_heads));
    pool.parallel_for(count * g.kv_heads, [&](int64_t item) {
        const int64_t t = first_sparse + item / g.kv_heads, kv = item % g.kv_heads, p = pos0 + t;
        thread_local std::vector<float> scores;
        stage1_scores(q + (t * heads + kv * g.group) * d, state.c1, state.c2, kv, p, g, round, scores);
        float margin = 0;
        selected[static_cast<size_t>(item)] = select_blocks(scores, p, g, &margin);
        if (probe) (*probe)(p, kv, selected[static_cast<size_t>(item)], margin);
    });
    return selected;
}

void sparse_layer_attention(ThreadPool& pool, const float* q, int64_t tokens, int64_t pos0, const SparseLayerState& state,
                            const SparseGeometry& g, int64_t first_sparse, const std::vector<std::vector<int64_t>>& selected,
                            bool round, float* out) {
    const int64_t heads = g.kv_heads * g.group, d = g.head_dim, tile = 64;
    const int64_t tiles = (tokens + tile - 1) / tile;
    pool.parallel_for(tiles * g.kv_heads, [&](int64_t item) {
        const int64_t t0 = (item / g.kv_heads) * tile, kv = item % g.kv_heads;
        const int64_t t1 = std::min(tokens, t0 + tile);
        std::vector<TileQuery> queries(static_cast<size_t>(t1 - t0));
        for (int64_t t = t0; t < t1; ++t) {
            TileQuery& tq = queries[static_cast<size_t>(t - t0)];
            tq.p = pos0 + t;
            tq.q_group = q + (t * heads + kv * g.group) * d;
            tq.out_group = out + (t * heads + kv * g.group) * d;
            if (t >= first_sparse) {
                tq.blocks = selected[static_cast<size_t>((t - first_sparse) * g.kv_heads + kv)];
            } else {
                for (int64_t b = 0; b <= tq.p / g.block; ++b) tq.blocks.push_back(b);
            }
        }
        attend_tile(queries, state, kv, g, round);
    });
}

}  // namespace quire::cpu
