// The stage-1 prefill paths (kernels/stage1_paths.h) against the CPU twin (engine/cpu/infllm_v2.*):
// Hopper's wgmma kernel where this device runs it, the mma.sync kernel always, the skip of the
// blocks the selection forces, and a timing of both kernels at a 1M-like shape (printed, never
// asserted). Run it also with QUIRE_GPU_ARCH_LIMIT=86 QUIRE_GPU_SMEM_LIMIT_KB=99: the automatic path
// is then the mma.sync one and a named wgmma path must refuse.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "attention_ops.h"
#include "bf16.h"
#include "cpu/infllm_v2.h"
#include "cpu/sparse_attention.h"
#include "device_buffer.h"
#include "device_limits.h"
#include "gpu_test_main.h"
#include "random_fill.h"
#include "stage1_paths.h"

using namespace quire;
using quire::test::DeviceBuffer;
using kernels::Stage1Path;

namespace {

std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = float_to_bf16(d(rng));
    return v;
}

// Relative difference of two pooled scores; -inf must match -inf.
double rel_diff(float a, float b) {
    if (std::isinf(a) || std::isinf(b)) return a == b ? 0.0 : INFINITY;
    if (std::isnan(a) || std::isnan(b)) return INFINITY;
    return std::fabs(double(a) - b) / std::max({std::fabs(double(a)), std::fabs(double(b)), 1e-30});
}

// Whether block b of the query at p pools at least one visible C1 entry. A block with none (always a
// forced one) may hold -inf or 0 depending on the kernel and its CTA shape: compared only when true.
bool has_visible_entry(int64_t b, int64_t p) {
    const int64_t n1 = p + 1 < 32 ? 0 : (p + 1 - 32) / 16 + 1;
    return std::max<int64_t>(0, 4 * b - 1) < n1;
}

bool forced_block(int64_t b, int64_t p, const cpu::SparseGeometry& g) {
    const int64_t qb = p / 64;
    return qb + 1 <= g.total_topk || b < g.init_blocks || b >= qb - g.local_blocks;
}

// One problem: keys, compressed keys on the CPU and the GPU, queries, the CPU twin's pooled scores.
struct Problem {
    int64_t kv, group, dim, n, tokens, pos0, stride;
    cpu::SparseGeometry g;
    std::vector<float> pooled;  // [tokens * kv][stride], the CPU twin
    std::unique_ptr<DeviceBuffer<uint16_t>> q, c1, c2;

    Problem(int64_t kv_, int64_t group_, int64_t dim_, int64_t n_, int64_t tokens_)
        : kv(kv_), group(group_), dim(dim_), n(n_), tokens(tokens_), pos0(n_ - tokens_), stride((n_ - 1) / 64 + 1) {
        const int64_t width = kv * dim, heads = kv * group;
        const auto kb = random_bf16(n * width, 20), qb = random_bf16(tokens * heads * dim, 21);
        std::vector<float> kf(kb.size()), qf(qb.size());
        for (size_t i = 0; i < kb.size(); ++i) kf[i] = bf16_to_float(kb[i]);
        for (size_t i = 0; i < qb.size(); ++i) qf[i] = bf16_to_float(qb[i]);
        cpu::SparseLayerState st{cpu::PagedRows(width), cpu::PagedRows(width), cpu::PagedRows(width), cpu::PagedRows(width)};
        for (int64_t t = 0; t < n; ++t) st.k.append(kf.data() + t * width);
        g.kv_heads = kv;
        g.head_dim = dim;
        g.group = group;
        cpu::update_compressed_keys(st.k, n, g, true, st.c1, st.c2);
        auto rows_of = [&](const cpu::PagedRows& r) {
            std::vector<uint16_t> out(static_cast<size_t>(std::max<int64_t>(r.size(), 1) * width), 0);
            for (int64_t i = 0; i < r.size(); ++i)
                for (int64_t c = 0; c < width; ++c) out[static_cast<size_t>(i * width + c)] = float_to_bf16(r.row(i)[c]);
            return out;
        };
        q = std::make_unique<DeviceBuffer<uint16_t>>(qb);
        c1 = std::make_unique<DeviceBuffer<uint16_t>>(rows_of(st.c1));
        c2 = std::make_unique<DeviceBuffer<uint16_t>>(rows_of(st.c2));
        pooled.assign(static_cast<size_t>(tokens * kv * stride), -INFINITY);
        for (int64_t t = 0; t < tokens; ++t)
            for (int64_t gg = 0; gg < kv; ++gg) {
                std::vector<float> sc;
                const int64_t p = pos0 + t;
                cpu::stage1_scores(qf.data() + (t * heads + gg * group) * dim, st.c1, st.c2, gg, p, g, true, sc);
                const auto pb = cpu::pool_block_scores(sc, p, g);
                std::copy(pb.begin(), pb.end(), pooled.begin() + (t * kv + gg) * stride);
            }
    }

    // Block scores of one path (forced: skip the forced blocks); empty with a failure recorded when
    // the launch fails.
    std::vector<float> run(Stage1Path path, bool skip_forced, cudaError_t* status = nullptr) {
        DeviceBuffer<float> out(tokens * kv * stride);
        kernels::Stage1Forced forced;
        if (skip_forced) forced = {g.init_blocks, g.local_blocks, g.total_topk};
        const cudaError_t e = kernels::launch_stage1_blocks_on(path, q->get(), c1->get(), c2->get(), tokens, pos0, kv, group, dim, stride,
                                                               out.get(), nullptr, 0, forced, nullptr);
        if (status) *status = e;
        if (e != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess || !out.guard_intact()) return {};
        return out.download();
    }

    // NMSE and worst relative difference against the CPU twin over the blocks top-k chooses among.
    void compare_to_cpu(const std::vector<float>& got, double& nmse, double& worst, int64_t& compared) const {
        double num = 0, den = 0;
        worst = 0;
        compared = 0;
        for (int64_t t = 0; t < tokens; ++t)
            for (int64_t gg = 0; gg < kv; ++gg)
                for (int64_t b = 0; b <= (pos0 + t) / 64; ++b) {
                    if (forced_block(b, pos0 + t, g)) continue;
                    const size_t i = static_cast<size_t>((t * kv + gg) * stride + b);
                    const double d = double(got[i]) - pooled[i];
                    num += d * d;
                    den += double(pooled[i]) * pooled[i];
                    worst = std::max(worst, rel_diff(got[i], pooled[i]));
                    ++compared;
                }
        nmse = compared ? (std::isnan(num) ? INFINITY : num / std::max(den, 1e-30)) : 0.0;
    }

    // GPU selection from block scores (launch_select_blocks).
    std::vector<int32_t> select(const std::vector<float>& scores) {
        DeviceBuffer<float> ds(scores);
        DeviceBuffer<int32_t> sel(tokens * kv * g.total_topk);
        if (kernels::launch_select_blocks(ds.get(), tokens, pos0, kv, stride, g.init_blocks, g.local_blocks, g.total_topk, sel.get(),
                                          nullptr) != cudaSuccess ||
            cudaDeviceSynchronize() != cudaSuccess)
            return {};
        return sel.download();
    }
};

bool arch_limited() {
    const char* v = std::getenv("QUIRE_GPU_ARCH_LIMIT");
    return v && *v;
}

}  // namespace

class TestGpuStage1 : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        kernels::reset_device_limits();
        const auto& L = kernels::device_limits();
        std::printf("device sm_%d, %lld KB shared memory per block%s%s; wgmma stage 1 %s (ring of %d tiles for d 128, %d for d 64)\n",
                    L.sm(), static_cast<long long>(L.smem_optin_per_block / 1024), L.arch_forced ? " (arch limited)" : "",
                    L.smem_forced ? " (smem limited)" : "", kernels::stage1_wgmma_supported() ? "supported" : "not supported",
                    kernels::stage1_wgmma_ring(128), kernels::stage1_wgmma_ring(64));
        if (arch_limited()) QVERIFY2(!kernels::stage1_wgmma_supported(), "QUIRE_GPU_ARCH_LIMIT must hide the wgmma path");
    }

    void paths_data() {
        QTest::addColumn<qlonglong>("kv");
        QTest::addColumn<qlonglong>("group");
        QTest::addColumn<qlonglong>("dim");
        QTest::addColumn<qlonglong>("keys");
        QTest::addColumn<qlonglong>("tokens");
        QTest::newRow("g16 d128 9103 x47") << 1LL << 16LL << 128LL << 9103LL << 47LL;
        QTest::newRow("g16 d128 70001 x47 (many tiles)") << 2LL << 16LL << 128LL << 70001LL << 47LL;
        QTest::newRow("g16 d128 4097 x33 (partial tile and CTA)") << 2LL << 16LL << 128LL << 4097LL << 33LL;
        QTest::newRow("g16 d128 6200 x100 (dense to sparse)") << 1LL << 16LL << 128LL << 6200LL << 100LL;
        QTest::newRow("g16 d128 300 x300 (from position 0)") << 1LL << 16LL << 128LL << 300LL << 300LL;
        QTest::newRow("g16 d64 20011 x40") << 2LL << 16LL << 64LL << 20011LL << 40LL;
        QTest::newRow("g2 d64 9103 x47 (generic kernel)") << 2LL << 2LL << 64LL << 9103LL << 47LL;
    }
    void paths() {
        QFETCH(qlonglong, kv);
        QFETCH(qlonglong, group);
        QFETCH(qlonglong, dim);
        QFETCH(qlonglong, keys);
        QFETCH(qlonglong, tokens);
        Problem P(kv, group, dim, keys, tokens);
        const bool wgmma_here = group == 16 && kernels::stage1_wgmma_supported();

        // The automatic path and the mma.sync path against the CPU twin.
        for (Stage1Path path : {Stage1Path::automatic, Stage1Path::mma_sync}) {
            const auto got = P.run(path, false);
            QVERIFY2(!got.empty(), "stage 1 failed or wrote past its output");
            double nmse = 0, worst = 0;
            int64_t compared = 0;
            P.compare_to_cpu(got, nmse, worst, compared);
            std::printf("  %s: %lld blocks vs CPU, NMSE %.3g, worst relative difference %.3g\n",
                        path == Stage1Path::automatic ? "automatic" : "mma.sync ", static_cast<long long>(compared), nmse, worst);
            QVERIFY2(nmse <= 1e-5, qPrintable(QString("NMSE %1 against the CPU twin").arg(nmse)));
        }

        // wgmma (both CTA shapes): against the CPU twin and against the mma.sync kernel on every
        // block with a visible entry.
        for (const char* cta : {"2", "4"}) {
            qputenv("QUIRE_STAGE1_WGMMA_CTA", cta);
            cudaError_t status = cudaSuccess;
            const auto wg = P.run(Stage1Path::wgmma, false, &status);
            qunsetenv("QUIRE_STAGE1_WGMMA_CTA");
            if (!wgmma_here) {
                QCOMPARE(status, cudaErrorNotSupported);
            } else {
                QVERIFY2(!wg.empty(), "the wgmma kernel failed or wrote past its output");
                double nmse = 0, worst = 0;
                int64_t compared = 0;
                P.compare_to_cpu(wg, nmse, worst, compared);
                const auto ms = P.run(Stage1Path::mma_sync, false);
                double worst_vs_mma = 0;
                for (int64_t t = 0; t < tokens; ++t)
                    for (int64_t gg = 0; gg < kv; ++gg)
                        for (int64_t b = 0; b <= (P.pos0 + t) / 64; ++b) {
                            if (!has_visible_entry(b, P.pos0 + t)) continue;
                            const size_t i = static_cast<size_t>((t * kv + gg) * P.stride + b);
                            worst_vs_mma = std::max(worst_vs_mma, rel_diff(wg[i], ms[i]));
                        }
                std::printf("  wgmma (%s warpgroups per CTA): %lld blocks vs CPU, NMSE %.3g, worst relative difference %.3g; vs mma.sync on "
                            "every block %.3g\n",
                            cta, static_cast<long long>(compared), nmse, worst, worst_vs_mma);
                QVERIFY2(nmse <= 1e-5, qPrintable(QString("wgmma NMSE %1 against the CPU twin").arg(nmse)));
                QVERIFY2(worst_vs_mma <= 1.0 / 64, qPrintable(QString("wgmma vs mma.sync: relative difference %1").arg(worst_vs_mma)));
            }
        }

        // Skipping the forced blocks: every block top-k chooses among is bit-identical, and so is the
        // selection. Forced blocks are not compared (their scores are unused).
        for (Stage1Path path : {Stage1Path::automatic, Stage1Path::mma_sync, Stage1Path::wgmma}) {
            if (path == Stage1Path::wgmma && !wgmma_here) continue;
            const auto full = P.run(path, false), skipped = P.run(path, true);
            QVERIFY2(!full.empty() && !skipped.empty(), "stage 1 failed or wrote past its output");
            int64_t differing = 0, candidates = 0;
            for (int64_t t = 0; t < tokens; ++t)
                for (int64_t gg = 0; gg < kv; ++gg)
                    for (int64_t b = 0; b <= (P.pos0 + t) / 64; ++b) {
                        if (forced_block(b, P.pos0 + t, P.g)) continue;
                        const size_t i = static_cast<size_t>((t * kv + gg) * P.stride + b);
                        ++candidates;
                        if (std::memcmp(&full[i], &skipped[i], 4) != 0) ++differing;
                    }
            QCOMPARE(differing, 0LL);
            const auto sel_full = P.select(full), sel_skipped = P.select(skipped);
            QVERIFY(!sel_full.empty());
            QCOMPARE(sel_skipped, sel_full);
            if (path == Stage1Path::automatic)
                std::printf("  forced-block skip: %lld candidate blocks identical, selections identical\n", static_cast<long long>(candidates));
        }
    }

    // The wgmma kernel's raw products q . C2[j] (QUIRE_STAGE1_WGMMA_PART=raw_scores: the first tile,
    // before any softmax) against the CPU: a wrong descriptor, swizzle or register layout shows
    // here as a permutation, which the failure message describes.
    void raw_scores() {
        if (!kernels::stage1_wgmma_supported() || kernels::stage1_wgmma_ring(128) != 4) QSKIP("the default wgmma configuration does not run here");
        const int64_t kv = 2, tokens = 37, dim = 128, n = 8192, pos0 = n - tokens, stride = 1024, heads = kv * 16;
        const int64_t n2 = (n - 128) / 64 + 1;
        const auto qb = random_bf16(tokens * heads * dim, 31), cb = random_bf16(n2 * kv * dim, 32), c1b = random_bf16(((n - 32) / 16 + 1) * kv * dim, 33);
        DeviceBuffer<uint16_t> dq(qb), dc2(cb), dc1(c1b);
        DeviceBuffer<float> out(tokens * kv * stride);
        qputenv("QUIRE_STAGE1_WGMMA_PART", "raw_scores");
        const cudaError_t st = kernels::launch_stage1_blocks_on(Stage1Path::wgmma, dq.get(), dc1.get(), dc2.get(), tokens, pos0, kv, 16, dim,
                                                                stride, out.get(), nullptr, 0, {}, nullptr);
        qunsetenv("QUIRE_STAGE1_WGMMA_PART");
        QCOMPARE(st, cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        QVERIFY(out.guard_intact());
        const auto got = out.download();
        auto cpu = [&](int64_t t, int64_t g, int64_t h, int64_t j) {
            double acc = 0;
            for (int64_t k = 0; k < dim; ++k)
                acc += double(bf16_to_float(qb[static_cast<size_t>((t * heads + g * 16 + h) * dim + k)])) *
                       bf16_to_float(cb[static_cast<size_t>((j * kv + g) * dim + k)]);
            return acc;
        };
        double worst = 0;
        int64_t bad = 0;
        QString first_bad;
        for (int64_t t = 0; t < tokens; ++t)
            for (int64_t g = 0; g < kv; ++g)
                for (int64_t h = 0; h < 16; ++h)
                    for (int64_t j = 0; j < 64; ++j) {
                        const double want = cpu(t, g, h, j), have = got[static_cast<size_t>((t * kv + g) * stride + 64 * h + j)];
                        const double err = std::fabs(have - want) / (1.0 + std::fabs(want));
                        worst = std::max(worst, std::isnan(err) ? INFINITY : err);
                        if (err > 1e-3 && bad++ == 0) {
                            // Which (head, key) the GPU value belongs to, if any: the layout error's signature.
                            QString match = "none";
                            for (int64_t h2 = 0; h2 < 16 && match == "none"; ++h2)
                                for (int64_t j2 = 0; j2 < 64; ++j2)
                                    if (std::fabs(cpu(t, g, h2, j2) - have) <= 1e-3 * (1.0 + std::fabs(have))) {
                                        match = QString("head %1 key %2").arg(h2).arg(j2);
                                        break;
                                    }
                            first_bad = QString("query %1 group %2 head %3 key %4: GPU %5, CPU %6 (the GPU value is the CPU's %7)")
                                            .arg(t).arg(g).arg(h).arg(j).arg(have).arg(want).arg(match);
                        }
                    }
        std::printf("  raw wgmma products vs CPU: %lld of %lld off, worst error %.3g\n", static_cast<long long>(bad),
                    static_cast<long long>(tokens * kv * 16 * 64), worst);
        QVERIFY2(bad == 0, qPrintable(first_bad));
    }

    // The engine's guard: where wgmma runs, its one-time check against the mma.sync kernel passes
    // (a failure would print a warning and make the automatic path the mma.sync one).
    void self_check() {
        if (!kernels::stage1_wgmma_supported()) QSKIP("the wgmma kernel does not run here");
        QVERIFY2(kernels::stage1_wgmma_self_check(), "the wgmma stage-1 self-check failed");
    }

    // Old (mma.sync) and new (wgmma, where it runs) kernel at a 1M-like shape: the last 8192-token
    // chunk (the default) of a 1M prefill, two KV heads of 16 query heads, head dim 128. Printed,
    // never asserted.
    void timing_1m() {
        const int64_t tokens = 8192, n = 1 << 20, kv = 2, group = 16, dim = 128, pos0 = n - tokens;
        const int64_t n1 = (n - 32) / 16 + 1, n2 = (n - 128) / 64 + 1, stride = (n - 1) / 64 + 1;
        DeviceBuffer<uint16_t> q(tokens * kv * group * dim), c1(n1 * kv * dim), c2(n2 * kv * dim);
        DeviceBuffer<float> a(tokens * kv * stride), b(tokens * kv * stride);
        QVERIFY(q.ok() && c1.ok() && c2.ok() && a.ok() && b.ok());
        QCOMPARE(kernels::launch_fill_random_bf16(q.get(), tokens * kv * group * dim, 1, 1.0f, nullptr), cudaSuccess);
        QCOMPARE(kernels::launch_fill_random_bf16(c1.get(), n1 * kv * dim, 2, 0.5f, nullptr), cudaSuccess);
        QCOMPARE(kernels::launch_fill_random_bf16(c2.get(), n2 * kv * dim, 3, 0.5f, nullptr), cudaSuccess);
        const cpu::SparseGeometry g;
        const kernels::Stage1Forced forced{g.init_blocks, g.local_blocks, g.total_topk};
        const double flops = 2.0 * double(tokens) * kv * group * dim * double(n1 + n2);
        auto time = [&](Stage1Path path, bool skip, float* out) -> double {
            cudaEvent_t e0, e1;
            cudaEventCreate(&e0);
            cudaEventCreate(&e1);
            double best = INFINITY;
            for (int rep = 0; rep < 3; ++rep) {
                cudaEventRecord(e0);
                const cudaError_t st = kernels::launch_stage1_blocks_on(path, q.get(), c1.get(), c2.get(), tokens, pos0, kv, group, dim,
                                                                        stride, out, nullptr, 0, skip ? forced : kernels::Stage1Forced{}, nullptr);
                cudaEventRecord(e1);
                if (st != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess) return -1;
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                best = std::min(best, double(ms));
            }
            cudaEventDestroy(e0);
            cudaEventDestroy(e1);
            return best;
        };
        const double t_mma = time(Stage1Path::mma_sync, false, b.get()), t_mma_skip = time(Stage1Path::mma_sync, true, b.get());
        QVERIFY(t_mma > 0 && t_mma_skip > 0);
        std::printf("  1M-like stage 1, mma.sync: %.2f ms (%.0f TFLOP/s), with the forced-block skip %.2f ms\n", t_mma,
                    flops / t_mma * 1e-9, t_mma_skip);
        if (!kernels::stage1_wgmma_supported()) return;
        QCOMPARE(time(Stage1Path::mma_sync, false, b.get()) > 0, true);
        qputenv("QUIRE_STAGE1_WGMMA_CTA", "4");
        const double t_wg4 = time(Stage1Path::wgmma, false, a.get());
        qunsetenv("QUIRE_STAGE1_WGMMA_CTA");
        const double t_wg = time(Stage1Path::wgmma, false, a.get()), t_wg_skip = time(Stage1Path::wgmma, true, a.get());
        QVERIFY(t_wg > 0 && t_wg_skip > 0 && t_wg4 > 0);
        std::printf("  1M-like stage 1, wgmma:    %.2f ms (%.0f TFLOP/s), with the forced-block skip %.2f ms; one CTA of 4 warpgroups "
                    "per SM: %.2f ms\n",
                    t_wg, flops / t_wg * 1e-9, t_wg_skip, t_wg4);
        // Where the wgmma kernel's time goes: the same run without its epilogues, and without its MMAs.
        qputenv("QUIRE_STAGE1_WGMMA_PART", "mma_only");
        const double t_mma_only = time(Stage1Path::wgmma, false, b.get());
        qputenv("QUIRE_STAGE1_WGMMA_PART", "epilogue_only");
        const double t_epi_only = time(Stage1Path::wgmma, false, b.get());
        qunsetenv("QUIRE_STAGE1_WGMMA_PART");
        std::printf("  1M-like stage 1, wgmma parts: loads + MMAs %.2f ms, loads + epilogues %.2f ms (full %.2f ms)\n", t_mma_only,
                    t_epi_only, t_wg);
        QCOMPARE(time(Stage1Path::mma_sync, false, b.get()) > 0, true);  // b: full scores again
        // The skip run last wrote `a`; compare the candidate blocks of both kernels (full run into b).
        const auto ha = a.download(), hb = b.download();
        double worst = 0;
        for (int64_t t = 0; t < tokens; t += 7)
            for (int64_t gg = 0; gg < kv; ++gg)
                for (int64_t blk = g.init_blocks; blk < (pos0 + t) / 64 - g.local_blocks; ++blk) {
                    const size_t i = static_cast<size_t>((t * kv + gg) * stride + blk);
                    worst = std::max(worst, rel_diff(ha[i], hb[i]));
                }
        std::printf("  1M-like: wgmma vs mma.sync, worst relative difference over sampled candidate blocks %.3g\n", worst);
        QVERIFY2(worst <= 1.0 / 64, qPrintable(QString("wgmma vs mma.sync at 1M: %1").arg(worst)));
    }

    // One decode step's stage 1 (the split path) and block selection at 8K, 128K and 1M: two KV heads
    // of 16 query heads, head dim 128, the 9B model's sparse layer. Microseconds per layer, the mean
    // of 50 back-to-back launches; the bytes stage 1 must read (C1 and C2 of both heads) give its
    // effective bandwidth. Printed, never asserted.
    void decode_timing() {
        const int64_t kv = 2, group = 16, dim = 128;
        const cpu::SparseGeometry g;
        for (const int64_t n : {int64_t{8192}, int64_t{131072}, int64_t{1} << 20}) {
            const int64_t pos0 = n - 1, n1 = (n - 32) / 16 + 1, n2 = (n - 128) / 64 + 1, stride = (n - 1) / 64 + 1;
            const int64_t scratch_n = kernels::stage1_scratch_floats(1, pos0, kv, group);
            QVERIFY(scratch_n > 0);
            DeviceBuffer<uint16_t> q(kv * group * dim), c1(n1 * kv * dim), c2(n2 * kv * dim);
            DeviceBuffer<float> scores(kv * stride), scratch(scratch_n);
            DeviceBuffer<int32_t> sel(kv * g.total_topk);
            QVERIFY(q.ok() && c1.ok() && c2.ok() && scores.ok() && scratch.ok() && sel.ok());
            QCOMPARE(kernels::launch_fill_random_bf16(q.get(), kv * group * dim, 1, 1.0f, nullptr), cudaSuccess);
            QCOMPARE(kernels::launch_fill_random_bf16(c1.get(), n1 * kv * dim, 2, 0.5f, nullptr), cudaSuccess);
            QCOMPARE(kernels::launch_fill_random_bf16(c2.get(), n2 * kv * dim, 3, 0.5f, nullptr), cudaSuccess);
            const kernels::Stage1Forced forced{g.init_blocks, g.local_blocks, g.total_topk};
            auto stage1 = [&] {
                return kernels::launch_stage1_blocks(q.get(), c1.get(), c2.get(), 1, pos0, kv, group, dim, stride, scores.get(),
                                                     scratch.get(), scratch_n, nullptr, forced);
            };
            auto select = [&] {
                return kernels::launch_select_blocks(scores.get(), 1, pos0, kv, stride, g.init_blocks, g.local_blocks, g.total_topk,
                                                     sel.get(), nullptr);
            };
            // The engine's call: with stage 1's scratch, which long rows split over CTAs in.
            auto select_split = [&] {
                return kernels::launch_select_blocks(scores.get(), 1, pos0, kv, stride, g.init_blocks, g.local_blocks, g.total_topk,
                                                     sel.get(), nullptr, scratch.get(), scratch_n);
            };
            auto time_us = [&](auto&& launch) -> double {
                constexpr int kReps = 50;
                cudaEvent_t e0, e1;
                cudaEventCreate(&e0);
                cudaEventCreate(&e1);
                bool ok = launch() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
                cudaEventRecord(e0);
                for (int r = 0; r < kReps && ok; ++r) ok = launch() == cudaSuccess;
                cudaEventRecord(e1);
                ok = ok && cudaEventSynchronize(e1) == cudaSuccess;
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                cudaEventDestroy(e0);
                cudaEventDestroy(e1);
                return ok ? 1000.0 * ms / kReps : -1.0;
            };
            QVERIFY(kernels::select_decode_scratch_floats(1, pos0, kv, g.total_topk) <= scratch_n);
            const double t1 = time_us(stage1), t2 = time_us(select), t3 = time_us(select_split);
            QVERIFY(t1 > 0 && t2 > 0 && t3 > 0);
            // After stage 1, as the engine runs them: the split selection in stage 1's scratch
            // chooses what one CTA per row chooses.
            std::vector<int32_t> lists[2];
            for (int way = 0; way < 2; ++way) {
                QCOMPARE(stage1(), cudaSuccess);
                QCOMPARE(way == 0 ? select() : select_split(), cudaSuccess);
                QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
                lists[way] = sel.download();
            }
            QVERIFY2(lists[0] == lists[1], qPrintable(QString("at %1 tokens the split selection chose other blocks").arg(n)));
            const double bytes = double(n1 + n2) * kv * dim * 2;
            std::printf("  decode at %7lld tokens: stage 1 %.1f us (%.0f GB/s over C1+C2), selection %.1f us (one CTA a row), %.1f us "
                        "(with scratch: split over CTAs past 4,096 blocks)\n",
                        static_cast<long long>(n), t1, bytes / t1 * 1e-3, t2, t3);
        }
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuStage1)
#include "test_gpu_stage1.moc"
