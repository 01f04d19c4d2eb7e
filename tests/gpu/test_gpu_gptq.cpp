// The GPTQ kernels (gptq_dequant, gptq_gemv) against a CPU dequantization written here from the
// formula in kernels/gptq_view.h: 4 and 8 bits, symmetric and asymmetric zero points, contiguous
// groups and desc_act g_idx, gptq (zero_offset 1) and gptq_v2 (0), odd sizes and outputs that are not
// a multiple of any tile. Prints the achieved bandwidth next to a device-to-device copy of the same
// bytes (never asserted: tests are not benchmarks).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "bf16.h"
#include "device_buffer.h"
#include "device_limits.h"
#include "gemv.h"
#include "gptq_dequant.h"
#include "gptq_gemv.h"
#include "gptq_gemv_mma.h"
#include "gpu_test_main.h"
#include "norm_ops.h"
#include "random_fill.h"

using namespace quire;
using quire::test::DeviceBuffer;

namespace {

struct Shape {
    int64_t in = 0, out = 0, group_size = 128;
    int bits = 4;
    bool sym = true, desc_act = false, explicit_g_idx = false;
    int zero_offset = 1;
};

// A random layer in host memory, packed exactly as gptq_view.h describes, with its dequantized
// weights W[j, k] (exact fp32: an fp16 scale times a small integer).
struct HostLayer {
    Shape shape;
    int64_t groups = 0;
    std::vector<int32_t> qweight, qzeros, g_idx;
    std::vector<__half> scales;
    std::vector<float> w;  // [out, in]
};

HostLayer make_layer(const Shape& s, uint64_t seed) {
    HostLayer h;
    h.shape = s;
    const int pw = 32 / s.bits;
    const uint32_t mask = (1u << s.bits) - 1;
    h.groups = (s.in + s.group_size - 1) / s.group_size;
    std::mt19937_64 rng(seed);
    std::vector<uint32_t> q(static_cast<size_t>(s.in * s.out));
    for (auto& v : q) v = static_cast<uint32_t>(rng() & mask);
    // Stored zero points: symmetric checkpoints store the midpoint (minus the gptq offset).
    std::vector<uint32_t> z(static_cast<size_t>(h.groups * s.out));
    for (auto& v : z) v = s.sym ? ((1u << (s.bits - 1)) - static_cast<uint32_t>(s.zero_offset)) : static_cast<uint32_t>(rng() & mask);
    std::uniform_real_distribution<float> sd(0.002f, 0.05f);
    h.scales.resize(static_cast<size_t>(h.groups * s.out));
    for (auto& v : h.scales) v = __float2half(sd(rng));
    // desc_act: inputs are quantized in a permuted order, so g_idx[k] is the group of k's rank.
    std::vector<int32_t> gk(static_cast<size_t>(s.in));
    if (s.desc_act) {
        std::vector<int64_t> perm(static_cast<size_t>(s.in));
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int64_t r = 0; r < s.in; ++r) gk[static_cast<size_t>(perm[static_cast<size_t>(r)])] = static_cast<int32_t>(r / s.group_size);
    } else {
        for (int64_t k = 0; k < s.in; ++k) gk[static_cast<size_t>(k)] = static_cast<int32_t>(k / s.group_size);
    }
    if (s.desc_act || s.explicit_g_idx) h.g_idx = gk;
    h.qweight.assign(static_cast<size_t>(s.in / pw * s.out), 0);
    for (int64_t k = 0; k < s.in; ++k)
        for (int64_t j = 0; j < s.out; ++j)
            h.qweight[static_cast<size_t>((k / pw) * s.out + j)] |=
                static_cast<int32_t>(q[static_cast<size_t>(k * s.out + j)] << (s.bits * (k % pw)));
    h.qzeros.assign(static_cast<size_t>(h.groups * (s.out / pw)), 0);
    for (int64_t g = 0; g < h.groups; ++g)
        for (int64_t j = 0; j < s.out; ++j)
            h.qzeros[static_cast<size_t>(g * (s.out / pw) + j / pw)] |=
                static_cast<int32_t>(z[static_cast<size_t>(g * s.out + j)] << (s.bits * (j % pw)));
    // W[j, k] = scales[g_idx[k], j] * (q(k, j) - (z(g_idx[k], j) + zero_offset)), read back from the
    // packed words with the formula of gptq_view.h (so a packing mistake here shows up too).
    h.w.resize(static_cast<size_t>(s.out * s.in));
    for (int64_t k = 0; k < s.in; ++k) {
        const int64_t g = gk[static_cast<size_t>(k)];
        for (int64_t j = 0; j < s.out; ++j) {
            const uint32_t qv = (static_cast<uint32_t>(h.qweight[static_cast<size_t>((k / pw) * s.out + j)]) >> (s.bits * (k % pw))) & mask;
            const uint32_t zv = (static_cast<uint32_t>(h.qzeros[static_cast<size_t>(g * (s.out / pw) + j / pw)]) >> (s.bits * (j % pw))) & mask;
            const float sc = __half2float(h.scales[static_cast<size_t>(g * s.out + j)]);
            h.w[static_cast<size_t>(j * s.in + k)] =
                sc * static_cast<float>(static_cast<int>(qv) - (static_cast<int>(zv) + s.zero_offset));
        }
    }
    return h;
}

// The layer's tensors on the device.
struct DeviceLayer {
    DeviceBuffer<int32_t> qweight, qzeros, g_idx;
    DeviceBuffer<__half> scales;
    kernels::GptqView view;
    explicit DeviceLayer(const HostLayer& h)
        : qweight(h.qweight), qzeros(h.qzeros), g_idx(h.g_idx.empty() ? std::vector<int32_t>{0} : h.g_idx), scales(h.scales) {
        view.qweight = qweight.get();
        view.qzeros = qzeros.get();
        view.scales = scales.get();
        view.g_idx = h.g_idx.empty() ? nullptr : g_idx.get();
        view.in = h.shape.in;
        view.out = h.shape.out;
        view.bits = h.shape.bits;
        view.group_size = h.shape.group_size;
        view.zero_offset = h.shape.zero_offset;
    }
    int64_t packed_bytes() const {
        const int64_t groups = (view.in + view.group_size - 1) / view.group_size;
        return view.in / (32 / view.bits) * view.out * 4 + groups * view.out / (32 / view.bits) * 4 + groups * view.out * 2;
    }
};

// The tensor-core GEMV's split scratch for launches of up to `cols` output columns, tickets zeroed.
struct SplitScratch {
    DeviceBuffer<float> partials;
    DeviceBuffer<uint32_t> tickets;
    kernels::GptqGemvScratch view;
    explicit SplitScratch(int64_t cols)
        : partials(kernels::gptq_gemv_partial_floats(cols)),
          tickets(std::vector<uint32_t>(static_cast<size_t>(kernels::gptq_gemv_ticket_count(cols)), 0u)),
          view{partials.get(), kernels::gptq_gemv_partial_floats(cols), tickets.get(), kernels::gptq_gemv_ticket_count(cols)} {}
};

std::vector<uint16_t> random_x(int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = float_to_bf16(d(rng));
    return v;
}

// y = W x in double against the GPU's bf16 result. Allowed: the final bf16 rounding (2^-8
// relative) plus fp32 accumulation error, bounded by 2^-16 of sum |w x| (the kernel subtracts the
// zero-point term once per group, so the bound is on the magnitude of the terms, not of y).
QString compare_gemv(const HostLayer& h, const std::vector<uint16_t>& x, int64_t tokens, const std::vector<uint16_t>& y) {
    const int64_t in = h.shape.in, out = h.shape.out;
    double max_err = 0;
    int64_t bad = 0, first_bad = -1;
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t j = 0; j < out; ++j) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < in; ++k) {
                const double p = double(h.w[static_cast<size_t>(j * in + k)]) * bf16_to_float(x[static_cast<size_t>(t * in + k)]);
                ref += p;
                mag += std::fabs(p);
            }
            const double got = bf16_to_float(y[static_cast<size_t>(t * out + j)]);
            const double err = std::fabs(got - ref);
            max_err = std::max(max_err, err);
            if (!(err <= std::fabs(ref) * (1.0 / 256) + mag * (1.0 / 65536) + 1e-30)) {
                if (first_bad < 0) first_bad = t * out + j;
                ++bad;
            }
        }
    std::printf("    gemv %lldx%lld t=%lld: max abs error %.3g, %lld outside tolerance", static_cast<long long>(out),
                static_cast<long long>(in), static_cast<long long>(tokens), max_err, static_cast<long long>(bad));
    if (first_bad >= 0) std::printf(" (first at token %lld, column %lld)", static_cast<long long>(first_bad / out), static_cast<long long>(first_bad % out));
    std::printf("\n");
    if (bad == 0) return {};
    return QString("%1 of %2 outputs outside tolerance, first at token %3 column %4, max abs error %5")
        .arg(bad).arg(tokens * out).arg(first_bad / out).arg(first_bad % out).arg(max_err);
}

QString shape_name(const Shape& s) {
    return QString("%1x%2 %3bit g%4 %5 %6 %7")
        .arg(s.out).arg(s.in).arg(s.bits).arg(s.group_size)
        .arg(s.sym ? "sym" : "asym")
        .arg(s.desc_act ? "desc_act" : (s.explicit_g_idx ? "g_idx" : "contiguous"))
        .arg(s.zero_offset ? "v1" : "v2");
}

void add_shapes() {
    QTest::addColumn<qlonglong>("in");
    QTest::addColumn<qlonglong>("out");
    QTest::addColumn<qlonglong>("group");
    QTest::addColumn<int>("bits");
    QTest::addColumn<bool>("sym");
    QTest::addColumn<bool>("desc_act");
    QTest::addColumn<bool>("explicit_g_idx");
    QTest::addColumn<int>("zero_offset");
    auto add = [](Shape s) {
        QTest::newRow(qPrintable(shape_name(s))) << qlonglong(s.in) << qlonglong(s.out) << qlonglong(s.group_size) << s.bits << s.sym
                                                 << s.desc_act << s.explicit_g_idx << s.zero_offset;
    };
    for (int bits : {4, 8})
        for (int zo : {1, 0}) {
            add({512, 256, 128, bits, true, false, false, zo});
            add({512, 256, 128, bits, false, false, false, zo});
            add({512, 256, 64, bits, false, true, false, zo});
        }
    // Odd sizes: out not a multiple of any tile (8 * 25), in with a partial last group, group_size
    // -1 (one group: the loader passes in), group size 32, and explicit contiguous g_idx (the
    // general path must agree with the fast one).
    add({296, 200, 64, 4, false, false, false, 1});
    add({296, 200, 64, 8, true, false, false, 0});
    add({296, 200, 296, 4, false, false, false, 1});
    add({1024, 1016, 32, 4, false, false, false, 1});
    add({1024, 1016, 32, 8, false, true, false, 1});
    add({768, 72, 128, 4, true, false, true, 1});
    add({4096, 4104, 128, 4, false, false, false, 0});
    // Shapes of the 4-bit tensor-core kernel: a 9B-sized layer (128 tiles, the input split in 4),
    // three tiles (split in 4 parts over 16 chunks), and one group over the whole input.
    add({4096, 4096, 128, 4, false, false, false, 1});
    add({2048, 96, 128, 4, true, false, false, 0});
    add({1024, 256, 1024, 4, false, false, false, 1});
    // Group sizes that split a packed word (4 inputs at 4 bits, 2 at 8 bits): the general path.
    add({256, 64, 4, 4, false, false, false, 1});
    add({256, 64, 2, 8, false, false, false, 0});
}

// The current data row as a Shape (QFETCH declares locals, hence a macro).
#define FETCH_SHAPE(s)                                                                                \
    QFETCH(qlonglong, in);                                                                            \
    QFETCH(qlonglong, out);                                                                           \
    QFETCH(qlonglong, group);                                                                         \
    QFETCH(int, bits);                                                                                \
    QFETCH(bool, sym);                                                                                \
    QFETCH(bool, desc_act);                                                                           \
    QFETCH(bool, explicit_g_idx);                                                                     \
    QFETCH(int, zero_offset);                                                                         \
    const Shape s{in, out, group, bits, sym, desc_act, explicit_g_idx, zero_offset}

// Mean time of `iters` runs of `fn` on the default stream, in seconds.
template <typename Fn>
double time_it(Fn fn, int iters) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    fn();  // warm-up
    cudaEventRecord(a);
    for (int i = 0; i < iters; ++i) fn();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms / 1000.0 / iters;
}

}  // namespace

class TestGpuGptq : public QObject {
    Q_OBJECT
private slots:
    void dequant_data() { add_shapes(); }
    void dequant() {
        FETCH_SHAPE(s);
        const HostLayer h = make_layer(s, 11 + static_cast<uint64_t>(s.in * 7 + s.out));
        DeviceLayer d(h);
        DeviceBuffer<uint16_t> dw(s.out * s.in);
        QVERIFY(d.qweight.ok() && dw.ok());
        QCOMPARE(kernels::launch_gptq_dequant(d.view, dw.get(), nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        const auto got = dw.download();
        int64_t bad = 0, first = -1;
        double max_err = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            const uint16_t want = float_to_bf16(h.w[i]);
            max_err = std::max(max_err, std::fabs(double(bf16_to_float(got[i])) - h.w[i]));
            if (got[i] != want) {
                if (first < 0) first = static_cast<int64_t>(i);
                ++bad;
            }
        }
        std::printf("    dequant: max abs error vs exact %.3g, %lld of %zu differ from the bf16 rounding\n", max_err,
                    static_cast<long long>(bad), got.size());
        QVERIFY2(dw.guard_intact(), "gptq_dequant wrote past its output");
        QVERIFY2(bad == 0, qPrintable(QString("%1 weights differ, first at row %2 col %3: got %4, want %5")
                                          .arg(bad).arg(first / s.in).arg(first % s.in)
                                          .arg(first >= 0 ? bf16_to_float(got[static_cast<size_t>(first)]) : 0.0f)
                                          .arg(first >= 0 ? round_bf16(h.w[static_cast<size_t>(first)]) : 0.0f)));
    }

    // The same layer in the engine's tiled layout gives the same dequantized weights.
    void dequant_tiled_data() { add_shapes(); }
    void dequant_tiled() {
        FETCH_SHAPE(s);
        if (s.out % kernels::kGptqTileCols) QSKIP("out is not a multiple of 32: the engine keeps such a layer untiled");
        const HostLayer h = make_layer(s, 13 + static_cast<uint64_t>(s.in * 7 + s.out));
        DeviceLayer d(h);
        DeviceBuffer<int32_t> tiled(static_cast<int64_t>(h.qweight.size()));
        QCOMPARE(kernels::launch_gptq_tile_qweight(d.qweight.get(), tiled.get(), s.in / (32 / s.bits), s.out, nullptr), cudaSuccess);
        kernels::GptqView tv = d.view;
        tv.qweight = tiled.get();
        tv.tiled = true;
        DeviceBuffer<uint16_t> a(s.out * s.in), b(s.out * s.in);
        QCOMPARE(kernels::launch_gptq_dequant(d.view, a.get(), nullptr), cudaSuccess);
        QCOMPARE(kernels::launch_gptq_dequant(tv, b.get(), nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        QVERIFY2(tiled.guard_intact(), "the tiling wrote past its output");
        QVERIFY2(a.download() == b.download(), "tiled and untiled layers dequantize differently");
    }

    // Every kernel (CUDA-core loops, tensor cores with and without a split input) on the checkpoint's
    // layout and on the tiled one, against the CPU.
    void gemv_data() { add_shapes(); }
    void gemv() {
        FETCH_SHAPE(s);
        const HostLayer h = make_layer(s, 23 + static_cast<uint64_t>(s.in * 3 + s.out));
        DeviceLayer d(h);
        DeviceBuffer<int32_t> tiled(static_cast<int64_t>(h.qweight.size()));
        kernels::GptqView tv = d.view;
        if (s.out % kernels::kGptqTileCols == 0) {
            QCOMPARE(kernels::launch_gptq_tile_qweight(d.qweight.get(), tiled.get(), s.in / (32 / s.bits), s.out, nullptr), cudaSuccess);
            tv.qweight = tiled.get();
            tv.tiled = true;
        }
        const kernels::GptqGemvLayer probe{d.view, nullptr};
        const bool mma = kernels::gptq_gemv_mma_applies(&probe, 1);
        SplitScratch split(s.out);
        const kernels::GptqGemvScratch& scratch = split.view;
        struct Run {
            const char* name;
            kernels::GptqGemvLoop loop;
            const kernels::GptqGemvScratch* scratch;
        };
        const Run runs[] = {{"batched", kernels::GptqGemvLoop::batched, nullptr},
                            {"pipelined", kernels::GptqGemvLoop::pipelined, nullptr},
                            {"tensor cores", kernels::GptqGemvLoop::tensor_cores, nullptr},
                            {"tensor cores, split input", kernels::GptqGemvLoop::tensor_cores, &scratch},
                            {"automatic", kernels::GptqGemvLoop::automatic, &scratch}};
        for (const Run& run : runs)
            for (const bool use_tiled : {false, true}) {
                if (use_tiled && !tv.tiled) continue;
                for (int64_t tokens : {1, 2, 3, 8}) {
                    const auto x = random_x(tokens * s.in, 5 + static_cast<uint64_t>(tokens));
                    DeviceBuffer<uint16_t> dx(x), dy(tokens * s.out);
                    const cudaError_t rc = kernels::launch_gptq_gemv(use_tiled ? tv : d.view, dx.get(), tokens, dy.get(), nullptr, run.loop, run.scratch);
                    if (run.loop == kernels::GptqGemvLoop::tensor_cores && !mma) {
                        QCOMPARE(rc, cudaErrorInvalidValue);  // a layer the tensor-core kernel does not take is refused
                        continue;
                    }
                    QCOMPARE(rc, cudaSuccess);
                    QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
                    QVERIFY2(dy.guard_intact(), "gptq_gemv wrote past its output");
                    const QString err = compare_gemv(h, x, tokens, dy.download());
                    QVERIFY2(err.isEmpty(), qPrintable(QString("%1%2, tokens %3: %4").arg(run.name).arg(use_tiled ? ", tiled" : "").arg(tokens).arg(err)));
                }
            }
        // Every split launch left its tickets at zero for the next one.
        for (uint32_t t : split.tickets.download()) QCOMPARE(t, 0u);
    }

    // The tensor-core kernel with the output gate on its input, and with SwiGLU of two layers, gives
    // bit for bit what the separate kernels give (the engine's decode relies on it: gates.cuh).
    void fused_gates_match_separate() {
        if (kernels::device_limits().sm_major < 8) QSKIP("the tensor-core kernel needs sm_80");
        for (const Shape s : {Shape{4096, 4096, 128, 4, true, false, false, 1}, Shape{256, 256, 128, 4, false, false, false, 0},
                              Shape{1024, 96, 1024, 4, false, false, false, 1}}) {
            const HostLayer ha = make_layer(s, 41 + static_cast<uint64_t>(s.out)), hb = make_layer(s, 43 + static_cast<uint64_t>(s.out));
            DeviceLayer da(ha), db(hb);
            SplitScratch split(2 * s.out);
            const kernels::GptqGemvScratch& scratch = split.view;
            for (int64_t tokens : {1, 3, 8}) {
                const auto x = random_x(tokens * s.in, 61 + static_cast<uint64_t>(tokens)), gate = random_x(tokens * s.in, 67);
                DeviceBuffer<uint16_t> dx(x), dgate(gate), gated(x), fused(tokens * s.out), separate(tokens * s.out), g(tokens * s.out),
                    u(tokens * s.out), silu(tokens * s.out);
                // The output gate: fused, then the separate gate kernel and the plain GEMV.
                QVERIFY(kernels::gptq_gemv_mma_gated_input_applies(da.view, tokens, &scratch));
                QCOMPARE(kernels::launch_gptq_gemv_mma_gated_input(da.view, dx.get(), dgate.get(), tokens, fused.get(), nullptr, &scratch), cudaSuccess);
                QCOMPARE(kernels::launch_sigmoid_gate(gated.get(), dgate.get(), tokens * s.in, nullptr), cudaSuccess);
                QCOMPARE(kernels::launch_gptq_gemv(da.view, gated.get(), tokens, separate.get(), nullptr, kernels::GptqGemvLoop::tensor_cores, &scratch),
                         cudaSuccess);
                QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
                QVERIFY2(fused.download() == separate.download(), qPrintable(QString("output gate, %1x%2, tokens %3").arg(s.out).arg(s.in).arg(tokens)));
                QVERIFY(fused.guard_intact());
                // SwiGLU: fused, then the two layers in one launch and the separate SwiGLU kernel.
                QVERIFY(kernels::gptq_gemv_mma_swiglu_applies(da.view, db.view, tokens));
                QCOMPARE(kernels::launch_gptq_gemv_mma_swiglu(da.view, db.view, dx.get(), tokens, fused.get(), nullptr, &scratch), cudaSuccess);
                const kernels::GptqGemvLayer both[2] = {{da.view, g.get()}, {db.view, u.get()}};
                QCOMPARE(kernels::launch_gptq_gemv_multi(both, 2, dx.get(), tokens, nullptr, kernels::GptqGemvLoop::tensor_cores, &scratch), cudaSuccess);
                QCOMPARE(kernels::launch_silu_mul(g.get(), u.get(), tokens * s.out, silu.get(), nullptr), cudaSuccess);
                QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
                QVERIFY2(fused.download() == silu.download(), qPrintable(QString("SwiGLU, %1x%2, tokens %3").arg(s.out).arg(s.in).arg(tokens)));
                QVERIFY(fused.guard_intact());
            }
            for (uint32_t t : split.tickets.download()) QCOMPARE(t, 0u);
        }
        // Layers the tensor-core kernel does not take are refused (the engine then runs the separate kernels).
        const HostLayer h8 = make_layer(Shape{256, 64, 64, 8, true, false, false, 1}, 3);
        DeviceLayer d8(h8);
        QVERIFY(!kernels::gptq_gemv_mma_gated_input_applies(d8.view, 1, nullptr));
        QVERIFY(!kernels::gptq_gemv_mma_swiglu_applies(d8.view, d8.view, 1));
    }

    // A bf16 layer joined to the 4-bit launch (a 4-bit checkpoint's o_gate / z_proj) gives bit for
    // bit what launch_gemv_bf16 gives, and the 4-bit layers what they give alone; with and without
    // the split input, its rows not a multiple of the CTA's 8 warps. Two tokens or an x the bf16
    // layer does not match are refused.
    void bf16_layer_joins_bit_for_bit() {
        if (kernels::device_limits().sm_major < 8) QSKIP("the tensor-core kernel needs sm_80");
        const Shape a{2048, 256, 128, 4, true, false, false, 1}, b{2048, 96, 128, 4, false, false, false, 0};  // 8 chunks a lane: past the early ones
        const HostLayer ha = make_layer(a, 71), hb = make_layer(b, 73);
        DeviceLayer da(ha), db(hb);
        const int64_t rows = 1003;
        const auto w = random_x(rows * a.in, 79), x = random_x(a.in, 83);
        DeviceBuffer<uint16_t> dw(w), dx(x), ya(a.out), yb(b.out), yw(rows), sa(a.out), sb(b.out), sw(rows);
        SplitScratch split(a.out + b.out);
        for (const bool use_split : {false, true}) {
            const kernels::GptqGemvScratch* scratch = use_split ? &split.view : nullptr;
            const kernels::GptqGemvLayer layers[2] = {{da.view, ya.get()}, {db.view, yb.get()}}, alone[2] = {{da.view, sa.get()}, {db.view, sb.get()}};
            const kernels::GptqGemvBf16 bf16{dw.get(), rows, a.in, yw.get()};
            QVERIFY(kernels::gptq_gemv_mma_bf16_applies(layers, 2, bf16, 1));
            QCOMPARE(kernels::launch_gptq_gemv_mma_with_bf16(layers, 2, bf16, dx.get(), 1, nullptr, scratch), cudaSuccess);
            QCOMPARE(kernels::launch_gptq_gemv_mma(alone, 2, dx.get(), 1, nullptr, scratch), cudaSuccess);
            QCOMPARE(kernels::launch_gemv_bf16(dw.get(), rows, a.in, dx.get(), 1, sw.get(), nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
            const char* how = use_split ? "split input" : "whole input";
            QVERIFY2(yw.download() == sw.download(), qPrintable(QString("the bf16 layer, %1").arg(how)));
            QVERIFY2(ya.download() == sa.download() && yb.download() == sb.download(), qPrintable(QString("the 4-bit layers, %1").arg(how)));
            QVERIFY(ya.guard_intact() && yb.guard_intact() && yw.guard_intact());
        }
        for (uint32_t t : split.tickets.download()) QCOMPARE(t, 0u);
        QVERIFY2(split.partials.guard_intact(), "the split sums wrote past their scratch");
        const kernels::GptqGemvLayer one{da.view, ya.get()};
        QVERIFY(!kernels::gptq_gemv_mma_bf16_applies(&one, 1, {dw.get(), rows, a.in, yw.get()}, 2));
        QVERIFY(!kernels::gptq_gemv_mma_bf16_applies(&one, 1, {dw.get(), rows, a.in / 2, yw.get()}, 1));
        QCOMPARE(kernels::launch_gptq_gemv_mma_with_bf16(&one, 1, {dw.get(), rows, a.in / 2, yw.get()}, dx.get(), 1, nullptr, nullptr),
                 cudaErrorInvalidValue);
    }

    // Several layers sharing x in one launch give what each gives alone (bit for bit: the same
    // per-column arithmetic), including layers of different group layouts.
    void gemv_multi() {
        const Shape a{1024, 512, 128, 4, true, false, false, 1}, b{1024, 72, 64, 4, false, false, false, 1}, c{1024, 200, 128, 4, false, true, false, 0};
        const HostLayer ha = make_layer(a, 1), hb = make_layer(b, 2), hc = make_layer(c, 3);
        DeviceLayer da(ha), db(hb), dc(hc);
        const int64_t tokens = 3;
        const auto x = random_x(tokens * 1024, 9);
        DeviceBuffer<uint16_t> dx(x), ya(tokens * a.out), yb(tokens * b.out), yc(tokens * c.out), sa(tokens * a.out), sb(tokens * b.out),
            sc(tokens * c.out);
        const kernels::GptqGemvLayer layers[3] = {{da.view, ya.get()}, {db.view, yb.get()}, {dc.view, yc.get()}};
        QCOMPARE(kernels::launch_gptq_gemv_multi(layers, 3, dx.get(), tokens, nullptr, kernels::GptqGemvLoop::pipelined), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        QVERIFY2(compare_gemv(ha, x, tokens, ya.download()).isEmpty(), "multi, pipelined: layer a");
        QVERIFY2(compare_gemv(hb, x, tokens, yb.download()).isEmpty(), "multi, pipelined: layer b");
        QVERIFY2(compare_gemv(hc, x, tokens, yc.download()).isEmpty(), "multi, pipelined: layer c");
        QCOMPARE(kernels::launch_gptq_gemv_multi(layers, 3, dx.get(), tokens, nullptr, kernels::GptqGemvLoop::batched), cudaSuccess);
        QCOMPARE(kernels::launch_gptq_gemv(da.view, dx.get(), tokens, sa.get(), nullptr), cudaSuccess);
        QCOMPARE(kernels::launch_gptq_gemv(db.view, dx.get(), tokens, sb.get(), nullptr), cudaSuccess);
        QCOMPARE(kernels::launch_gptq_gemv(dc.view, dx.get(), tokens, sc.get(), nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        QVERIFY(ya.guard_intact() && yb.guard_intact() && yc.guard_intact());
        QVERIFY2(compare_gemv(ha, x, tokens, ya.download()).isEmpty(), "multi: layer a");
        QVERIFY2(compare_gemv(hb, x, tokens, yb.download()).isEmpty(), "multi: layer b");
        QVERIFY2(compare_gemv(hc, x, tokens, yc.download()).isEmpty(), "multi: layer c");
        // The tile width depends on the total column count, so multi and single may tile
        // differently; both are checked against the CPU above, and agree within rounding here.
    }

    // Every shape or pointer the kernels cannot take is refused before anything is launched.
    void refuses_bad_input() {
        const HostLayer h = make_layer({256, 64, 128, 4, true, false, false, 1}, 4);
        DeviceLayer d(h);
        DeviceBuffer<uint16_t> x(8 * 256), y(9 * 64), w(64 * 256 + 8);
        auto with = [&](auto change) {
            kernels::GptqView v = d.view;
            change(v);
            return v;
        };
        const kernels::GptqView bad[] = {
            with([](kernels::GptqView& v) { v.bits = 3; }),
            with([](kernels::GptqView& v) { v.bits = 2; }),
            with([](kernels::GptqView& v) { v.in = 252; }),  // not a multiple of 8 (4 bits)
            with([](kernels::GptqView& v) { v.out = 60; }),  // qzeros cannot pack it
            with([](kernels::GptqView& v) { v.in = 0; }),
            with([](kernels::GptqView& v) { v.group_size = 0; }),
            with([](kernels::GptqView& v) { v.zero_offset = 2; }),
            with([](kernels::GptqView& v) { v.qweight = nullptr; }),
            with([](kernels::GptqView& v) { v.scales = nullptr; }),
            with([](kernels::GptqView& v) { v.qzeros = nullptr; }),
            with([](kernels::GptqView& v) { v.qweight = reinterpret_cast<const int32_t*>(reinterpret_cast<const char*>(v.qweight) + 4); }),
        };
        for (const auto& v : bad) {
            QCOMPARE(kernels::launch_gptq_gemv(v, x.get(), 1, y.get(), nullptr), cudaErrorInvalidValue);
            QCOMPARE(kernels::launch_gptq_dequant(v, w.get(), nullptr), cudaErrorInvalidValue);
        }
        QCOMPARE(kernels::launch_gptq_gemv(d.view, x.get(), kernels::kGptqGemvMaxTokens + 1, y.get(), nullptr), cudaErrorInvalidValue);
        QCOMPARE(kernels::launch_gptq_gemv(d.view, x.get() + 1, 1, y.get(), nullptr), cudaErrorInvalidValue);  // misaligned x
        QCOMPARE(kernels::launch_gptq_gemv(d.view, x.get(), 1, nullptr, nullptr), cudaErrorInvalidValue);
        QCOMPARE(kernels::launch_gptq_dequant(d.view, w.get() + 1, nullptr), cudaErrorInvalidValue);  // misaligned output
        QCOMPARE(kernels::launch_gptq_dequant(d.view, nullptr, nullptr), cudaErrorInvalidValue);
        const kernels::GptqGemvLayer five[5] = {{d.view, y.get()}, {d.view, y.get()}, {d.view, y.get()}, {d.view, y.get()}, {d.view, y.get()}};
        QCOMPARE(kernels::launch_gptq_gemv_multi(five, kernels::kGptqGemvMaxLayers + 1, x.get(), 1, nullptr), cudaErrorInvalidValue);
        kernels::GptqGemvLayer mixed[2] = {{d.view, y.get()}, {d.view, y.get()}};
        mixed[1].weights.bits = 8;
        QCOMPARE(kernels::launch_gptq_gemv_multi(mixed, 2, x.get(), 1, nullptr), cudaErrorInvalidValue);
        QCOMPARE(kernels::launch_gptq_gemv(d.view, x.get(), 0, y.get(), nullptr), cudaSuccess);  // nothing to do
        QCOMPARE(cudaGetLastError(), cudaSuccess);
    }

    // Bandwidth of the 9B model's linear-layer shapes (docs/model.md §1): INT4 and INT8 GEMV and
    // dequantization against a device-to-device copy of the same bytes and the bf16 GEMV of the
    // same layer. Each is timed over rotating replicas totalling > 400 MB, so it measures memory,
    // not the 50 MB L2. Printed, never asserted.
    void bandwidth_report() {
#ifdef QUIRE_GPU_FORCED_SMEM_KB
        QSKIP("timings are reported by the full-limits run");
#endif
        struct L {
            const char* name;
            int64_t in, out;
        };
        const L shapes[] = {{"q/o 4096x4096", 4096, 4096}, {"gate/up 16384x4096", 4096, 16384}, {"down 4096x16384", 16384, 4096}};
        const int64_t kRotation = 400ll << 20;
        auto replicas = [&](int64_t bytes) { return static_cast<int>(std::max<int64_t>(2, (kRotation + bytes - 1) / bytes)); };
        for (const L& l : shapes) {
            const int64_t kTokens = 4;
            const auto x = random_x(kTokens * l.in, 3);
            DeviceBuffer<uint16_t> dx(x), dy(kTokens * l.out), bf(l.out * l.in);
            const int64_t bf_bytes = 2 * l.in * l.out;
            const int rb = replicas(bf_bytes);
            DeviceBuffer<uint16_t> wbf(rb * l.out * l.in);
            QVERIFY(bf.ok() && wbf.ok());
            QCOMPARE(kernels::launch_fill_random_bf16(wbf.get(), rb * l.out * l.in, 1, 0.02f, nullptr), cudaSuccess);
            QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);  // the GEMV reads its first weights before it waits (gemv.h)
            int i = 0;
            const double t_bf = time_it([&] {
                kernels::launch_gemv_bf16(wbf.get() + (i++ % rb) * l.out * l.in, l.out, l.in, dx.get(), 1, dy.get(), nullptr);
            }, 2 * rb);
            std::printf("    %-20s bf16 gemv: %7.1f us, %6.0f GB/s\n", l.name, t_bf * 1e6, double(bf_bytes) / t_bf / 1e9);
            for (int bits : {4, 8}) {
                const HostLayer h = make_layer({l.in, l.out, 128, bits, true, false, false, 1}, 77);
                std::vector<std::unique_ptr<DeviceLayer>> layers;
                const int64_t bytes = DeviceLayer(h).packed_bytes();
                const int r = replicas(bytes);
                for (int k = 0; k < r; ++k) layers.push_back(std::make_unique<DeviceLayer>(h));
                DeviceBuffer<uint8_t> src(r * bytes), dst(r * bytes);
                QVERIFY(src.ok() && dst.ok() && layers.back()->qweight.ok());
                int c = 0, g = 0, g4 = 0, q = 0;
                const double t_copy = time_it([&] {
                    const int64_t at = (c++ % r) * bytes;
                    cudaMemcpyAsync(dst.get() + at, src.get() + at, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice);
                }, 2 * r);
                const double t_gemv = time_it([&] { kernels::launch_gptq_gemv(layers[static_cast<size_t>(g++ % r)]->view, dx.get(), 1, dy.get(), nullptr); }, 2 * r);
                int gp = 0;
                const double t_pipe = time_it([&] {
                    kernels::launch_gptq_gemv(layers[static_cast<size_t>(gp++ % r)]->view, dx.get(), 1, dy.get(), nullptr, kernels::GptqGemvLoop::pipelined);
                }, 2 * r);
                const double t_gemv4 = time_it([&] { kernels::launch_gptq_gemv(layers[static_cast<size_t>(g4++ % r)]->view, dx.get(), kTokens, dy.get(), nullptr); }, r);
                const double t_deq = time_it([&] { kernels::launch_gptq_dequant(layers[static_cast<size_t>(q++ % r)]->view, bf.get(), nullptr); }, r);
                QCOMPARE(cudaGetLastError(), cudaSuccess);
                // Copy bandwidth counts the bytes read and written; the GEMV's the packed bytes read.
                const double copy_bw = 2.0 * double(bytes) / t_copy / 1e9, gemv_bw = double(bytes) / t_gemv / 1e9;
                std::printf("    %-20s INT%d: %.1f MB packed; copy %6.0f GB/s; gemv t=1 %7.1f us %6.0f GB/s (%3.0f%% of copy, %.2fx the bf16 time); "
                            "t=4 %7.1f us; dequant %7.1f us %6.0f GB/s\n",
                            l.name, bits, double(bytes) / 1e6, copy_bw, t_gemv * 1e6, gemv_bw, 100.0 * gemv_bw / copy_bw, t_gemv / t_bf,
                            t_gemv4 * 1e6, t_deq * 1e6, (double(bytes) + double(bf_bytes)) / t_deq / 1e9);
                std::printf("    %-20s INT%d: gemv t=1 batched %7.1f us %6.0f GB/s, pipelined %7.1f us %6.0f GB/s (%3.0f%% of copy)\n", l.name, bits,
                            t_gemv * 1e6, gemv_bw, t_pipe * 1e6, double(bytes) / t_pipe / 1e9, 100.0 * double(bytes) / t_pipe / 1e9 / copy_bw);
            }
        }
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuGptq)
#include "test_gpu_gptq.moc"
