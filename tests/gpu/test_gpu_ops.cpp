// Each CUDA kernel against its CPU twin (the CPU engine's bf16 mode) over a grid of shapes, with a
// normalised-error threshold per kernel and guard elements after every output (the pattern of
// llama.cpp's test-backend-ops).
#include <QtTest>

#include <cmath>
#include <limits>
#include <random>

#include "bf16.h"
#include "cpu/cpu_ops.h"
#include "cpu/infllm_v2.h"
#include "device_buffer.h"
#include "gpu_test_main.h"
#include "attention_ops.h"
#include "gemv.h"
#include "cpu/lightning_attention.h"
#include "cpu/sparse_attention.h"
#include "norm_ops.h"

using namespace quire;
using quire::test::DeviceBuffer;

namespace {

std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed, float scale = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = float_to_bf16(d(rng));
    return v;
}
std::vector<float> to_float(const std::vector<uint16_t>& v) {
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); ++i) f[i] = bf16_to_float(v[i]);
    return f;
}
// Normalised mean squared error of the GPU result against the CPU twin.
double nmse(const std::vector<uint16_t>& gpu, const std::vector<float>& cpu) {
    double num = 0, den = 0;
    for (size_t i = 0; i < cpu.size(); ++i) {
        const double d = double(bf16_to_float(gpu[i])) - cpu[i];
        if (std::isnan(d)) return INFINITY;
        num += d * d;
        den += double(cpu[i]) * cpu[i];
    }
    return num / std::max(den, 1e-30);
}
void check(const char* what, double err, double limit, bool guard) {
    QVERIFY2(guard, qPrintable(QString("%1: wrote past its output").arg(what)));
    QVERIFY2(err <= limit, qPrintable(QString("%1: NMSE %2 > %3").arg(what).arg(err).arg(limit)));
}

// bf16 results that differ by an occasional rounding flip (different summation order or a libm
// ulp) stay far below this; a wrong formula is orders of magnitude above it.
constexpr double kElementwise = 1e-6;

}  // namespace

class TestGpuOps : public QObject {
    Q_OBJECT
private slots:
    void rms_norm_data() {
        QTest::addColumn<qlonglong>("rows");
        QTest::addColumn<qlonglong>("n");
        for (qlonglong rows : {1, 15, 64, 1007})
            for (qlonglong n : {64, 128, 1024, 4096}) QTest::newRow(qPrintable(QString("%1x%2").arg(rows).arg(n))) << rows << n;
    }
    void rms_norm() {
        QFETCH(qlonglong, rows);
        QFETCH(qlonglong, n);
        const auto x = random_bf16(rows * n, 1, 3.0f);
        std::vector<float> w(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) w[static_cast<size_t>(i)] = round_bf16(1.0f + 0.1f * std::sin(float(i)));
        DeviceBuffer<uint16_t> dx(x), dout(rows * n);
        DeviceBuffer<float> dw(w);
        QCOMPARE(kernels::launch_rms_norm(dx.get(), dw.get(), rows, n, 1e-6f, dout.get(), nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> cpu(x.size());
        cpu::rms_norm(to_float(x).data(), w.data(), rows, n, 1e-6, cpu.data(), true);
        check("rms_norm", nmse(dout.download(), cpu), kElementwise, dout.guard_intact());
    }

    void rope_data() {
        QTest::addColumn<qlonglong>("tokens");
        QTest::addColumn<qlonglong>("heads");
        QTest::addColumn<qlonglong>("dim");
        QTest::addColumn<qlonglong>("pos0");
        QTest::newRow("short hd64") << 15LL << 4LL << 64LL << 0LL;
        QTest::newRow("hd128 at 8191") << 33LL << 32LL << 128LL << 8191LL;
        QTest::newRow("hd128 far") << 63LL << 2LL << 128LL << 1000000LL;
    }
    void rope() {
        QFETCH(qlonglong, tokens);
        QFETCH(qlonglong, heads);
        QFETCH(qlonglong, dim);
        QFETCH(qlonglong, pos0);
        const auto x = random_bf16(tokens * heads * dim, 2);
        DeviceBuffer<uint16_t> dx(x);
        QCOMPARE(kernels::launch_rope(dx.get(), tokens, heads, dim, pos0, 10000.0f, nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> cpu = to_float(x);
        cpu::rope(cpu.data(), tokens, heads, dim, pos0, 10000.0, true);
        // Near position 1e6 an fp32 angle is only good to ~0.06 rad (docs/model.md §2.3): GPU and CPU
        // sine and cosine of the same fp32 angle still agree to an ulp, so the bound stays tight.
        check("rope", nmse(dx.download(), cpu), 1e-5, dx.guard_intact());
    }

    void elementwise_data() {
        QTest::addColumn<qlonglong>("n");
        for (qlonglong n : {1LL, 17LL, 8191LL, 8192LL, 8193LL, 1000003LL}) QTest::newRow(qPrintable(QString::number(n))) << n;
    }
    void elementwise() {
        QFETCH(qlonglong, n);
        const auto a = random_bf16(n, 3, 2.0f), b = random_bf16(n, 4, 2.0f);
        const auto fa = to_float(a), fb = to_float(b);
        {
            DeviceBuffer<uint16_t> da(a), db(b), dout(n);
            QCOMPARE(kernels::launch_silu_mul(da.get(), db.get(), n, dout.get(), nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            std::vector<float> cpu(static_cast<size_t>(n));
            cpu::silu_mul(fa.data(), fb.data(), n, cpu.data(), true);
            check("silu_mul", nmse(dout.download(), cpu), kElementwise, dout.guard_intact());
        }
        {
            DeviceBuffer<uint16_t> dx(a), dg(b);
            QCOMPARE(kernels::launch_sigmoid_gate(dx.get(), dg.get(), n, nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            std::vector<float> cpu = fa;
            cpu::sigmoid_gate(cpu.data(), fb.data(), n, true);
            check("sigmoid_gate", nmse(dx.download(), cpu), kElementwise, dx.guard_intact());
        }
        {
            DeviceBuffer<uint16_t> dx(a), dr(b);
            const float r = 0.24748737f;
            QCOMPARE(kernels::launch_residual_add(dx.get(), dr.get(), r, n, nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            std::vector<float> cpu = fa;
            cpu::residual_add(cpu.data(), fb.data(), r, n, true);
            check("residual_add", nmse(dx.download(), cpu), kElementwise, dx.guard_intact());
        }
    }

    void compress_keys_data() {
        QTest::addColumn<qlonglong>("keys");
        QTest::addColumn<qlonglong>("width");
        for (qlonglong keys : {127LL, 8191LL, 9103LL})
            for (qlonglong width : {128LL, 256LL}) QTest::newRow(qPrintable(QString("%1x%2").arg(keys).arg(width))) << keys << width;
    }
    void compress_keys() {
        QFETCH(qlonglong, keys);
        QFETCH(qlonglong, width);
        const auto k = random_bf16(keys * width, 5);
        cpu::PagedRows rows(width), c1(width), c2(width);
        const auto fk = to_float(k);
        for (int64_t t = 0; t < keys; ++t) rows.append(fk.data() + t * width);
        cpu::SparseGeometry g;
        cpu::update_compressed_keys(rows, keys, g, true, c1, c2);
        for (auto [kernel, stride, ref] : {std::tuple{32LL, 16LL, &c1}, std::tuple{128LL, 64LL, &c2}}) {
            const int64_t count = ref->size();
            if (count == 0) continue;
            DeviceBuffer<uint16_t> dk(k), dout(count * width);
            QCOMPARE(kernels::launch_compress_keys(dk.get(), width, kernel, stride, 0, count, dout.get(), nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            std::vector<float> cpu(static_cast<size_t>(count * width));
            for (int64_t i = 0; i < count; ++i) std::copy(ref->row(i), ref->row(i) + width, cpu.begin() + i * width);
            check("compress_keys", nmse(dout.download(), cpu), kElementwise, dout.guard_intact());
        }
    }

    void add_rms_norm_data() {
        QTest::addColumn<qlonglong>("rows");
        QTest::addColumn<qlonglong>("n");
        QTest::newRow("1x4096") << 1LL << 4096LL;
        QTest::newRow("1007x256") << 1007LL << 256LL;
        QTest::newRow("15x200 (unfused path)") << 15LL << 200LL;
    }
    void add_rms_norm() {
        QFETCH(qlonglong, rows);
        QFETCH(qlonglong, n);
        const auto x = random_bf16(rows * n, 31, 2.0f), a = random_bf16(rows * n, 32, 2.0f);
        std::vector<float> w(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) w[static_cast<size_t>(i)] = round_bf16(1.0f + 0.1f * std::cos(float(i)));
        DeviceBuffer<uint16_t> dx(x), da(a), dout(rows * n);
        DeviceBuffer<float> dw(w);
        QCOMPARE(kernels::launch_add_rms_norm(dx.get(), da.get(), 0.7f, dw.get(), rows, n, 1e-6f, dout.get(), nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        auto cx = to_float(x);
        const auto ca = to_float(a);
        cpu::residual_add(cx.data(), ca.data(), 0.7f, rows * n, true);
        std::vector<float> cpu_out(cx.size());
        cpu::rms_norm(cx.data(), w.data(), rows, n, 1e-6, cpu_out.data(), true);
        check("add_rms_norm: x", nmse(dx.download(), cx), kElementwise, dx.guard_intact());
        check("add_rms_norm: out", nmse(dout.download(), cpu_out), kElementwise, dout.guard_intact());
    }

    // The fused per-head q/k norms + RoPE against the CPU's norm then RoPE on each of q and k.
    void head_norm_rope_data() { rope_data(); }
    void head_norm_rope() {
        QFETCH(qlonglong, tokens);
        QFETCH(qlonglong, heads);
        QFETCH(qlonglong, dim);
        QFETCH(qlonglong, pos0);
        const auto q = random_bf16(tokens * heads * dim, 3, 2.0f), k = random_bf16(tokens * heads * dim, 4, 0.5f);
        std::vector<float> qw(static_cast<size_t>(dim)), kw(static_cast<size_t>(dim));
        for (int64_t i = 0; i < dim; ++i) {
            qw[static_cast<size_t>(i)] = 0.5f + 0.01f * static_cast<float>(i);
            kw[static_cast<size_t>(i)] = 1.5f - 0.01f * static_cast<float>(i);
        }
        for (bool rope : {true, false}) {
            DeviceBuffer<uint16_t> dq(q), dk(k);
            DeviceBuffer<float> dqw(qw), dkw(kw);
            QCOMPARE(kernels::launch_head_norm_rope(dq.get(), dk.get(), dqw.get(), dkw.get(), tokens, heads, dim, pos0, 10000.0f, 1e-6f, rope,
                                                    nullptr),
                     cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            std::vector<float> cq = to_float(q), ck = to_float(k);
            cpu::rms_norm(cq.data(), qw.data(), tokens * heads, dim, 1e-6, cq.data(), true);
            cpu::rms_norm(ck.data(), kw.data(), tokens * heads, dim, 1e-6, ck.data(), true);
            if (rope) {
                cpu::rope(cq.data(), tokens, heads, dim, pos0, 10000.0, true);
                cpu::rope(ck.data(), tokens, heads, dim, pos0, 10000.0, true);
            }
            check("head_norm_rope: q", nmse(dq.download(), cq), 1e-5, dq.guard_intact());
            check("head_norm_rope: k", nmse(dk.download(), ck), 1e-5, dk.guard_intact());
        }
    }

    // Several matrices stored one after another, one pass: each output equals its own GEMV.
    void gemv_multi() {
        const int64_t cols = 4096;
        const std::vector<int64_t> rows{4096, 256, 256, 1000};
        int64_t total = 0;
        for (int64_t r : rows) total += r;
        for (int64_t tokens : {1LL, 4LL}) {
            const auto w = random_bf16(total * cols, 23, 0.05f), x = random_bf16(tokens * cols, 24);
            DeviceBuffer<uint16_t> dw(w), dx(x);
            std::vector<std::unique_ptr<DeviceBuffer<uint16_t>>> outs, singles;
            kernels::GemvOutput targets[4];
            for (size_t i = 0; i < rows.size(); ++i) {
                outs.push_back(std::make_unique<DeviceBuffer<uint16_t>>(tokens * rows[i]));
                singles.push_back(std::make_unique<DeviceBuffer<uint16_t>>(tokens * rows[i]));
                targets[i] = {rows[i], outs.back()->get()};
            }
            QCOMPARE(kernels::launch_gemv_bf16_multi(dw.get(), cols, dx.get(), tokens, targets, 4, nullptr), cudaSuccess);
            int64_t at = 0;
            for (size_t i = 0; i < rows.size(); ++i) {
                QCOMPARE(kernels::launch_gemv_bf16(dw.get() + at * cols, rows[i], cols, dx.get(), tokens, singles[i]->get(), nullptr), cudaSuccess);
                at += rows[i];
            }
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            for (size_t i = 0; i < rows.size(); ++i) {
                QCOMPARE(outs[i]->download(), singles[i]->download());  // the same sums in the same order
                QVERIFY(outs[i]->guard_intact());
            }
            QCOMPARE(kernels::launch_gemv_bf16_multi(dw.get(), cols, dx.get(), tokens, targets, kernels::kGemvMaxOutputs + 1, nullptr),
                     cudaErrorInvalidValue);
        }
    }

    void gemv_data() {
        QTest::addColumn<qlonglong>("tokens");
        QTest::addColumn<qlonglong>("rows");
        QTest::addColumn<qlonglong>("cols");
        QTest::newRow("1x1003x4096") << 1LL << 1003LL << 4096LL;
        QTest::newRow("3x64x16384") << 3LL << 64LL << 16384LL;
        QTest::newRow("4x517x136") << 4LL << 517LL << 136LL;
    }
    void gemv() {
        QFETCH(qlonglong, tokens);
        QFETCH(qlonglong, rows);
        QFETCH(qlonglong, cols);
        const auto w = random_bf16(rows * cols, 21, 0.05f), x = random_bf16(tokens * cols, 22);
        const auto wf = to_float(w), xf = to_float(x);
        DeviceBuffer<uint16_t> dw(w), dx(x), dy(tokens * rows);
        QCOMPARE(kernels::launch_gemv_bf16(dw.get(), rows, cols, dx.get(), tokens, dy.get(), nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> want(static_cast<size_t>(tokens * rows));
        for (int64_t t = 0; t < tokens; ++t)
            for (int64_t r = 0; r < rows; ++r) {
                double acc = 0;
                for (int64_t c = 0; c < cols; ++c) acc += double(wf[static_cast<size_t>(r * cols + c)]) * xf[static_cast<size_t>(t * cols + c)];
                want[static_cast<size_t>(t * rows + r)] = round_bf16(static_cast<float>(acc));
            }
        check("gemv", nmse(dy.download(), want), kElementwise, dy.guard_intact());
        QCOMPARE(kernels::launch_gemv_bf16(dw.get(), rows, cols, dx.get(), kernels::kGemvMaxTokens + 1, dy.get(), nullptr), cudaErrorInvalidValue);
    }

    void lightning_data() {
        QTest::addColumn<qlonglong>("heads");
        QTest::addColumn<qlonglong>("dim");
        QTest::addColumn<qlonglong>("pos0");
        QTest::newRow("4x64 aligned") << 4LL << 64LL << 0LL;
        QTest::newRow("2x128 unaligned") << 2LL << 128LL << 37LL;
        QTest::newRow("32x128 far") << 32LL << 128LL << 8191LL;
    }
    void lightning() {
        QFETCH(qlonglong, heads);
        QFETCH(qlonglong, dim);
        QFETCH(qlonglong, pos0);
        const int64_t T = 207;  // three partial and full chunks
        const auto q = random_bf16(T * heads * dim, 6, 0.3f), k = random_bf16(T * heads * dim, 7, 0.3f), v = random_bf16(T * heads * dim, 8);
        const auto slopes = cpu::alibi_slopes(heads);
        std::vector<float> state0(static_cast<size_t>(heads * dim * dim));
        std::mt19937_64 rng(9);
        std::normal_distribution<float> nd(0.0f, 0.1f);
        for (auto& x : state0) x = nd(rng);  // a state carried over from earlier tokens
        DeviceBuffer<uint16_t> dq(q), dk(k), dv(v), dout(T * heads * dim);
        DeviceBuffer<double> dslopes(slopes);
        DeviceBuffer<float> dstate(state0);
        // Two calls (the second starting mid-chunk), then three one-token calls (decode's kernel),
        // against one CPU call: chunking is by absolute position.
        const int64_t first = 100, steps = 3;
        auto call = [&](int64_t from, int64_t n) {
            const int64_t at = from * heads * dim;
            return kernels::launch_lightning(dq.get() + at, dk.get() + at, dv.get() + at, n, pos0 + from, heads, dim, dim, dslopes.get(),
                                             dstate.get(), dout.get() + at, nullptr);
        };
        QCOMPARE(call(0, first), cudaSuccess);
        QCOMPARE(call(first, T - first - steps), cudaSuccess);
        for (int64_t t = T - steps; t < T; ++t) QCOMPARE(call(t, 1), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        cpu::ThreadPool pool(2);
        std::vector<float> cpu_out(static_cast<size_t>(T * heads * dim)), cpu_state = state0;
        cpu::lightning_attention(pool, to_float(q).data(), to_float(k).data(), to_float(v).data(), T, pos0, heads, dim, dim, slopes,
                                 cpu_state.data(), cpu_out.data());
        for (auto& x : cpu_out) x = round_bf16(x);
        check("lightning output", nmse(dout.download(), cpu_out), 1e-5, dout.guard_intact());
        const auto gs = dstate.download();
        double num = 0, den = 0;
        for (size_t i = 0; i < gs.size(); ++i) {
            num += double(gs[i] - cpu_state[i]) * (gs[i] - cpu_state[i]);
            den += double(cpu_state[i]) * cpu_state[i];
        }
        check("lightning state", num / den, 1e-10, dstate.guard_intact());
    }

    void attention_and_selection_data() {
        QTest::addColumn<qlonglong>("kv");
        QTest::addColumn<qlonglong>("group");
        QTest::addColumn<qlonglong>("dim");
        QTest::addColumn<qlonglong>("keys");
        QTest::newRow("gqa16 hd128 9103") << 1LL << 16LL << 128LL << 9103LL;
        QTest::newRow("gqa2 hd64 9103") << 2LL << 2LL << 64LL << 9103LL;
        QTest::newRow("gqa16 hd128 70001") << 2LL << 16LL << 128LL << 70001LL;  // a multi-word block bitmap, many C tiles
    }
    void attention_and_selection() {
        QFETCH(qlonglong, kv);
        QFETCH(qlonglong, group);
        QFETCH(qlonglong, dim);
        QFETCH(qlonglong, keys);
        const int64_t N = keys, T = 47, pos0 = N - T, width = kv * dim, heads = kv * group;
        const auto kb = random_bf16(N * width, 10), vb = random_bf16(N * width, 11), qb = random_bf16(T * heads * dim, 12);
        const auto kf = to_float(kb), vf = to_float(vb), qf = to_float(qb);
        cpu::SparseLayerState st{cpu::PagedRows(width), cpu::PagedRows(width), cpu::PagedRows(width), cpu::PagedRows(width)};
        for (int64_t t = 0; t < N; ++t) {
            st.k.append(kf.data() + t * width);
            st.v.append(vf.data() + t * width);
        }
        cpu::SparseGeometry g;
        g.kv_heads = kv;
        g.head_dim = dim;
        g.group = group;
        cpu::update_compressed_keys(st.k, N, g, true, st.c1, st.c2);
        auto rows_of = [&](const cpu::PagedRows& r) {
            std::vector<uint16_t> out(static_cast<size_t>(r.size() * width));
            for (int64_t i = 0; i < r.size(); ++i)
                for (int64_t c = 0; c < width; ++c) out[static_cast<size_t>(i * width + c)] = float_to_bf16(r.row(i)[c]);
            return out;
        };
        DeviceBuffer<uint16_t> dk(kb), dv(vb), dq(qb), dc1(rows_of(st.c1)), dc2(rows_of(st.c2));

        // Stage 1 + pooling against the CPU, on the blocks the selection does not force.
        const int64_t stride = (N - 1) / 64 + 1;
        DeviceBuffer<float> dscores(T * kv * stride);
        QCOMPARE(kernels::stage1_scratch_floats(T, pos0, kv, group), 0);  // many queries: the fused kernel
        QCOMPARE(kernels::launch_stage1_blocks(dq.get(), dc1.get(), dc2.get(), T, pos0, kv, group, dim, stride, dscores.get(), nullptr, 0, nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        auto gscores = dscores.download();
        // The last queries again on their own: for group 16 that is the split (decode) path.
        const int64_t tail = 3, scratch_n = kernels::stage1_scratch_floats(tail, N - tail, kv, group);
        QCOMPARE(scratch_n > 0, group == 16);
        {
            DeviceBuffer<float> dtail(tail * kv * stride), dscratch(std::max<int64_t>(scratch_n, 1));
            QCOMPARE(kernels::launch_stage1_blocks(dq.get() + (T - tail) * heads * dim, dc1.get(), dc2.get(), tail, N - tail, kv, group, dim,
                                                   stride, dtail.get(), dscratch.get(), scratch_n, nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            QVERIFY(dtail.guard_intact());
            QVERIFY(dscratch.guard_intact());
            const auto got = dtail.download();
            // Checked below with the fused results: overwrite the tail rows with the split path's.
            std::copy(got.begin(), got.end(), gscores.begin() + (T - tail) * kv * stride);
        }
        std::vector<float> pooled_all(static_cast<size_t>(T * kv * stride), 0.0f);
        std::vector<std::vector<int64_t>> csel(static_cast<size_t>(T * kv));
        double num = 0, den = 0;
        int64_t compared = 0;
        for (int64_t t = 0; t < T; ++t)
            for (int64_t gg = 0; gg < kv; ++gg) {
                std::vector<float> sc;
                const int64_t p = pos0 + t, qbk = p / 64;
                cpu::stage1_scores(qf.data() + (t * heads + gg * group) * dim, st.c1, st.c2, gg, p, g, true, sc);
                const auto pooled = cpu::pool_block_scores(sc, p, g);
                const size_t item = static_cast<size_t>(t * kv + gg);
                std::copy(pooled.begin(), pooled.end(), pooled_all.begin() + static_cast<int64_t>(item) * stride);
                for (int64_t b = g.init_blocks; b < qbk - g.local_blocks; ++b) {
                    const double d = double(gscores[item * static_cast<size_t>(stride) + static_cast<size_t>(b)]) - pooled[static_cast<size_t>(b)];
                    num += d * d;
                    den += double(pooled[static_cast<size_t>(b)]) * pooled[static_cast<size_t>(b)];
                    ++compared;
                }
                csel[item] = cpu::select_from_block_scores(pooled, p, g);
            }
        QVERIFY(compared > 0);
        check("stage1 block scores", num / den, 1e-5, dscores.guard_intact());

        // Selection: on the CPU's own pooled scores it must match exactly, ties included.
        auto select_on = [&](const std::vector<float>& pooled, std::vector<int32_t>& flat) {
            DeviceBuffer<float> dcs(pooled);
            DeviceBuffer<int32_t> dsel(T * kv * g.total_topk);
            QCOMPARE(kernels::launch_select_blocks(dcs.get(), T, pos0, kv, stride, g.init_blocks, g.local_blocks, g.total_topk, dsel.get(), nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            flat = dsel.download();
            QVERIFY(dsel.guard_intact());
        };
        auto as_lists = [&](const std::vector<int32_t>& flat) {
            std::vector<std::vector<int64_t>> lists(static_cast<size_t>(T * kv));
            for (size_t item = 0; item < lists.size(); ++item)
                for (int64_t i = 0; i < g.total_topk; ++i)
                    if (const int32_t b = flat[item * static_cast<size_t>(g.total_topk) + static_cast<size_t>(i)]; b >= 0) lists[item].push_back(b);
            return lists;
        };
        std::vector<int32_t> gsel;
        select_on(pooled_all, gsel);
        QCOMPARE(as_lists(gsel), csel);
        // The last queries on their own take the decode kernel (a few rows, each in one CTA's registers).
        auto select_tail = [&](const std::vector<float>& pooled) {
            const std::vector<float> rows(pooled.end() - tail * kv * stride, pooled.end());
            DeviceBuffer<float> dcs(rows);
            DeviceBuffer<int32_t> dsel(tail * kv * g.total_topk);
            std::vector<std::vector<int64_t>> lists;
            if (kernels::launch_select_blocks(dcs.get(), tail, N - tail, kv, stride, g.init_blocks, g.local_blocks, g.total_topk, dsel.get(),
                                              nullptr) != cudaSuccess ||
                cudaDeviceSynchronize() != cudaSuccess || !dsel.guard_intact())
                return lists;
            const auto flat = dsel.download();
            lists.resize(static_cast<size_t>(tail * kv));
            for (size_t item = 0; item < lists.size(); ++item)
                for (int64_t i = 0; i < g.total_topk; ++i)
                    if (const int32_t b = flat[item * static_cast<size_t>(g.total_topk) + static_cast<size_t>(i)]; b >= 0) lists[item].push_back(b);
            return lists;
        };
        QCOMPARE(select_tail(pooled_all), std::vector<std::vector<int64_t>>(csel.end() - tail * kv, csel.end()));
        {
            // Many exact ties: scores from four values, so the cut falls inside a run of equal keys.
            std::vector<float> tied(pooled_all.size());
            for (size_t i = 0; i < tied.size(); ++i) tied[i] = round_bf16(0.001f * static_cast<float>((i * 7919) % 4));
            std::vector<std::vector<int64_t>> want(static_cast<size_t>(T * kv));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t gg = 0; gg < kv; ++gg) {
                    const size_t item = static_cast<size_t>(t * kv + gg);
                    const auto first = tied.begin() + static_cast<int64_t>(item) * stride;
                    want[item] = cpu::select_from_block_scores(std::vector<float>(first, first + (pos0 + t) / 64 + 1), pos0 + t, g);
                }
            std::vector<int32_t> tsel;
            select_on(tied, tsel);
            QCOMPARE(as_lists(tsel), want);
            QCOMPARE(select_tail(tied), std::vector<std::vector<int64_t>>(want.end() - tail * kv, want.end()));
        }

        // A forked sequence's caches come in two parts (a shared prefix and its own rows): the kernels
        // reading them that way give exactly what they give on one buffer.
        {
            const int64_t split_rows = N / 2 + 37, split1 = st.c1.size() / 2 + 3, split2 = st.c2.size() / 2 + 1;
            auto tail_of = [&](const std::vector<uint16_t>& all, int64_t from) {
                return std::vector<uint16_t>(all.begin() + from * width, all.end());
            };
            const auto c1_all = rows_of(st.c1), c2_all = rows_of(st.c2);
            DeviceBuffer<uint16_t> k_own(tail_of(kb, split_rows)), v_own(tail_of(vb, split_rows)), c1_own(tail_of(c1_all, split1)),
                c2_own(tail_of(c2_all, split2));
            const kernels::RowSource ks(dk.get(), split_rows, k_own.get()), vs(dv.get(), split_rows, v_own.get()),
                c1s(dc1.get(), split1, c1_own.get()), c2s(dc2.get(), split2, c2_own.get());
            DeviceBuffer<float> whole(T * kv * stride), parts(T * kv * stride);
            QCOMPARE(kernels::launch_stage1_blocks(dq.get(), dc1.get(), dc2.get(), T, pos0, kv, group, dim, stride, whole.get(), nullptr, 0, nullptr), cudaSuccess);
            QCOMPARE(kernels::launch_stage1_blocks(dq.get(), c1s, c2s, T, pos0, kv, group, dim, stride, parts.get(), nullptr, 0, nullptr), cudaSuccess);
            DeviceBuffer<int32_t> dsel_all(gsel);
            DeviceBuffer<uint16_t> out_whole(T * heads * dim), out_parts(T * heads * dim);
            QCOMPARE(kernels::launch_block_attention(dq.get(), dk.get(), dv.get(), T, pos0, kv, group, dim, dsel_all.get(), 0, g.total_topk,
                                                     out_whole.get(), nullptr), cudaSuccess);
            QCOMPARE(kernels::launch_block_attention(dq.get(), ks, vs, T, pos0, kv, group, dim, dsel_all.get(), 0, g.total_topk, out_parts.get(),
                                                     nullptr), cudaSuccess);
            DeviceBuffer<uint16_t> c1_new(4 * width), c1_new_parts(4 * width);  // entries straddling the split
            QCOMPARE(kernels::launch_compress_keys(dk.get(), width, 32, 16, split_rows / 16 - 2, 4, c1_new.get(), nullptr), cudaSuccess);
            QCOMPARE(kernels::launch_compress_keys(ks, width, 32, 16, split_rows / 16 - 2, 4, c1_new_parts.get(), nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            QVERIFY(whole.download() == parts.download());
            QVERIFY(out_whole.download() == out_parts.download());
            QVERIFY(c1_new.download() == c1_new_parts.download());
        }

        // Attention: all sparse, half dense then sparse, all dense — against the CPU.
        for (int64_t first_sparse : {int64_t{0}, T / 2, T}) {
            std::vector<cpu::TileQuery> tq;
            std::vector<float> cpu_out(static_cast<size_t>(T * heads * dim));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t gg = 0; gg < kv; ++gg) {
                    cpu::TileQuery x;
                    x.p = pos0 + t;
                    x.q_group = qf.data() + (t * heads + gg * group) * dim;
                    x.out_group = cpu_out.data() + (t * heads + gg * group) * dim;
                    if (t >= first_sparse) x.blocks = csel[static_cast<size_t>(t * kv + gg)];
                    else for (int64_t b = 0; b <= x.p / 64; ++b) x.blocks.push_back(b);
                    std::vector<cpu::TileQuery> one{x};
                    cpu::attend_tile(one, st, gg, g, true);
                }
            std::vector<int32_t> sparse_part(gsel.begin() + first_sparse * kv * g.total_topk, gsel.end());
            if (sparse_part.empty()) sparse_part.push_back(-1);
            DeviceBuffer<int32_t> dselected(sparse_part);
            DeviceBuffer<uint16_t> dout(T * heads * dim);
            QCOMPARE(kernels::launch_block_attention(dq.get(), dk.get(), dv.get(), T, pos0, kv, group, dim, dselected.get(), first_sparse,
                                                     g.total_topk, dout.get(), nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            check(("attention, first sparse query " + std::to_string(first_sparse)).c_str(), nmse(dout.download(), cpu_out), 1e-5,
                  dout.guard_intact());
            // The decode path (group 16): the last query alone, split over its blocks.
            if (kernels::decode_attention_applies(1, kv, group)) {
                const bool last_sparse = first_sparse < T;
                std::vector<int32_t> last_list(gsel.end() - kv * g.total_topk, gsel.end());
                DeviceBuffer<int32_t> dlast(last_list);
                DeviceBuffer<float> dscratch(kernels::decode_attention_scratch_floats(1, kv, group, dim));
                DeviceBuffer<uint16_t> dout1(heads * dim);
                QCOMPARE(kernels::launch_decode_attention(dq.get() + (T - 1) * heads * dim, dk.get(), dv.get(), 1, N - 1, kv, dim, dlast.get(),
                                                          last_sparse ? 0 : 1, g.total_topk, dscratch.get(), dout1.get(), nullptr), cudaSuccess);
                QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
                const std::vector<float> want(cpu_out.end() - heads * dim, cpu_out.end());
                check(last_sparse ? "decode attention, sparse" : "decode attention, dense", nmse(dout1.download(), want), 1e-5,
                      dout1.guard_intact() && dscratch.guard_intact());
            }
        }
    }

    // Selection on long rows, as a decode step at 1M and 2M tokens sees them (16,384 and 32,768
    // blocks: the decode kernel's largest register tiles), against the CPU, ties included.
    void select_long_rows_data() {
        QTest::addColumn<qlonglong>("tokens");
        QTest::addColumn<qlonglong>("kv");
        QTest::addColumn<qlonglong>("last");  // position of the last query
        QTest::addColumn<bool>("tied");
        QTest::newRow("1M, 1 token, 2 heads") << 1LL << 2LL << (1LL << 20) - 1 << false;
        QTest::newRow("1M, ties") << 1LL << 2LL << (1LL << 20) - 1 << true;
        QTest::newRow("2M, 3 tokens") << 3LL << 2LL << (2LL << 20) - 1 << false;
        QTest::newRow("2M + 1 block: the prefill kernel") << 1LL << 2LL << (2LL << 20) + 63 << false;
        QTest::newRow("odd length, 16 tokens") << 16LL << 2LL << 300001LL << true;
        QTest::newRow("below topk") << 1LL << 2LL << 96LL * 64 - 1 << false;
        QTest::newRow("6 segments, 2 tokens, ties") << 2LL << 2LL << 5LL * 65536 + 77 << true;
        QTest::newRow("600K, 32 rows of one head") << 32LL << 1LL << 600000LL << false;
    }
    void select_long_rows() {
        QFETCH(qlonglong, tokens);
        QFETCH(qlonglong, kv);
        QFETCH(qlonglong, last);
        QFETCH(bool, tied);
        const int64_t pos0 = last - tokens + 1, stride = last / 64 + 1, items = tokens * kv;
        SparseGeometry g;
        std::mt19937_64 rng(static_cast<uint64_t>(last));
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        std::vector<float> scores(static_cast<size_t>(items * stride));
        for (size_t i = 0; i < scores.size(); ++i)
            scores[i] = round_bf16(tied ? 0.001f * static_cast<float>((i * 7919) % 5) : u(rng) * u(rng));
        // Candidates whose key is 0 (negative, -inf or NaN: ranked lowest) among the others, and -0,
        // which ties with +0 (the tied rows have many).
        const float odd[4] = {-0.5f, -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), -0.0f};
        for (size_t i = 0; i < scores.size(); i += 97) scores[i] = odd[(i / 97) % 4];
        DeviceBuffer<float> dscores(scores);
        // Each row in one CTA (no scratch), then split over CTAs of 1,024 blocks where the scratch
        // is given: rows of 1M and 2M tokens take that path.
        const int64_t scratch_n = kernels::select_decode_scratch_floats(tokens, pos0, kv, g.total_topk);
        if (tokens * kv <= 32 && stride > 4 * 1024 && last < (2LL << 20)) QVERIFY(scratch_n > 0);
        for (const bool split : {false, true}) {
            DeviceBuffer<int32_t> dsel(items * g.total_topk);
            DeviceBuffer<float> scratch(std::max<int64_t>(scratch_n, 1));
            QCOMPARE(kernels::launch_select_blocks(dscores.get(), tokens, pos0, kv, stride, g.init_blocks, g.local_blocks, g.total_topk,
                                                   dsel.get(), nullptr, split ? scratch.get() : nullptr, split ? scratch_n : 0),
                     cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            QVERIFY(dsel.guard_intact());
            QVERIFY(scratch.guard_intact());
            const auto flat = dsel.download();
            for (int64_t item = 0; item < items; ++item) {
                const int64_t p = pos0 + item / kv;
                const auto first = scores.begin() + item * stride;
                const auto chosen = cpu::select_from_block_scores(std::vector<float>(first, first + p / 64 + 1), p, g);
                // The whole list: the chosen blocks ascending, then -1.
                std::vector<int32_t> want(static_cast<size_t>(g.total_topk), -1);
                for (size_t i = 0; i < chosen.size() && i < want.size(); ++i) want[i] = static_cast<int32_t>(chosen[i]);
                const std::vector<int32_t> got(flat.begin() + item * g.total_topk, flat.begin() + (item + 1) * g.total_topk);
                QVERIFY2(got == want, split ? "split over CTAs" : "one CTA per row");
            }
        }
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuOps)
#include "test_gpu_ops.moc"
