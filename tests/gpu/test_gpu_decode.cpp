// Decode on the GPU: the sampling kernel against the CPU sampler (engine/sampler.h) on the same
// logits, the engine's decode_and_sample against decode + the CPU sampler, and decode steps run
// as CUDA graphs against the same steps launched one by one (bit-identical logits and tokens).
#include <QElapsedTimer>
#include <QtTest>

#include <cmath>
#include <map>
#include <random>

#include "bf16.h"
#include "cuda/cuda_engine.h"
#include "device_buffer.h"
#include "engine_test_support.h"
#include "gemv.h"
#include "gpu_engine_support.h"
#include "gpu_test_main.h"
#include "random_fill.h"
#include "sampler.h"
#include "sampling.h"

using namespace quire;
using namespace quire::test;

namespace {


cuda::CudaEngine& as_cuda(Engine& e) { return static_cast<cuda::CudaEngine&>(e); }

// A logits row as the engine has it: bf16 bits, and the floats the CPU sampler gets from them.
struct Row {
    std::vector<uint16_t> bits;
    std::vector<float> values;
};

// kind 0: spread values (few ties); 1: few distinct values (many ties, -0 and +0); 2: one token far
// ahead of the rest.
Row make_row(int64_t vocab, int kind, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    Row r;
    for (int64_t i = 0; i < vocab; ++i) {
        float v = normal(rng);
        if (kind == 1) v = static_cast<float>(static_cast<int>(rng() % 7) - 3) * 0.5f;
        if (kind == 1 && rng() % 5 == 0) v = (rng() & 1) ? 0.0f : -0.0f;
        if (kind == 2) v = i == static_cast<int64_t>(seed % static_cast<uint64_t>(vocab)) ? 40.0f : normal(rng);
        const uint16_t b = float_to_bf16(v);
        r.bits.push_back(b);
        r.values.push_back(bf16_to_float(b));
    }
    return r;
}

// The kernel's token for `row` with options o and the draw u.
int32_t gpu_draw(const Row& row, const SamplingOptions& o, double u) {
    kernels::SampleArgs a;
    a.u = u;
    a.temperature = o.temperature;
    a.top_k = o.top_k;
    a.top_p = o.top_p;
    a.min_p = o.min_p;
    DeviceBuffer<uint16_t> logits(row.bits);
    DeviceBuffer<kernels::SampleArgs> args(std::vector<kernels::SampleArgs>{a});
    DeviceBuffer<uint32_t> scratch(kernels::kSampleScratchWords);
    DeviceBuffer<int32_t> out(1);
    const cudaError_t e = kernels::launch_sample_token(logits.get(), static_cast<int64_t>(row.bits.size()), args.get(), scratch.get(), out.get(), nullptr);
    if (e != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) qFatal("sampling kernel failed: %s", cudaGetErrorString(e));
    if (!out.guard_intact()) qFatal("the sampling kernel wrote past its output");
    return out.download()[0];
}

std::vector<int32_t> prompt_tokens(const Model& m, int64_t n) { return random_tokens(n, m.config().vocab_size, 31); }

// A fresh sequence: tokens[0, start) prefilled in 4096-token chunks, then the rest decoded one by
// one; the logits of every decode step (and in *ms the wall time of the steps after the first two).
std::vector<std::vector<float>> decode_steps(Engine& e, const std::vector<int32_t>& tokens, int64_t start, double* ms = nullptr) {
    const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + start);
    auto seq = e.new_sequence();
    run_sequence(e, *seq, prefix, 4096, start, {});
    std::vector<std::vector<float>> out;
    QElapsedTimer timer;
    for (size_t p = static_cast<size_t>(start); p < tokens.size(); ++p) {
        if (p == static_cast<size_t>(start) + 2) timer.start();
        std::vector<float> l;
        const Status st = e.decode(*seq, tokens[p], &l);
        if (!st) qFatal("decode at %zu failed: %s", p, st.message().c_str());
        out.push_back(std::move(l));
    }
    if (ms && timer.isValid()) *ms = static_cast<double>(timer.nsecsElapsed()) / 1e6;
    return out;
}

}  // namespace

class TestGpuDecode : public QObject {
    Q_OBJECT
private slots:
    void greedy_matches_cpu() {
        for (int64_t vocab : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{73448}})
            for (int kind = 0; kind < 3; ++kind)
                for (uint64_t seed = 1; seed <= 6; ++seed) {
                    const Row row = make_row(vocab, kind, seed * 977 + static_cast<uint64_t>(vocab));
                    const int32_t cpu = Sampler({}).sample(row.values, {});
                    QCOMPARE(gpu_draw(row, {}, 0.0), cpu);
                }
    }

    // The same seed draws the same token: the host takes u from the sampler's own generator.
    void sampling_matches_cpu_data() {
        QTest::addColumn<float>("temperature");
        QTest::addColumn<qint64>("top_k");
        QTest::addColumn<float>("top_p");
        QTest::addColumn<float>("min_p");
        QTest::newRow("temperature") << 0.7f << qint64(0) << 1.0f << 0.0f;
        QTest::newRow("top-k") << 1.0f << qint64(40) << 1.0f << 0.0f;
        QTest::newRow("top-p") << 0.8f << qint64(0) << 0.9f << 0.0f;
        QTest::newRow("top-p small") << 1.3f << qint64(0) << 0.05f << 0.0f;
        QTest::newRow("top-k + top-p") << 1.0f << qint64(100) << 0.7f << 0.0f;
        QTest::newRow("min-p") << 1.0f << qint64(0) << 1.0f << 0.1f;
        QTest::newRow("all") << 0.6f << qint64(50) << 0.95f << 0.05f;
        QTest::newRow("top-k 1") << 2.0f << qint64(1) << 1.0f << 0.0f;
        QTest::newRow("top-p 0") << 1.0f << qint64(0) << 0.0f << 0.0f;
    }
    void sampling_matches_cpu() {
        QFETCH(float, temperature);
        QFETCH(qint64, top_k);
        QFETCH(float, top_p);
        QFETCH(float, min_p);
        int draws = 0;
        for (int64_t vocab : {int64_t{5}, int64_t{1000}, int64_t{73448}})
            for (int kind = 0; kind < 3; ++kind)
                for (uint64_t seed = 1; seed <= 5; ++seed) {
                    SamplingOptions o;
                    o.temperature = temperature;
                    o.top_k = top_k;
                    o.top_p = top_p;
                    o.min_p = min_p;
                    o.seed = seed;
                    Sampler cpu(o), gpu(o);
                    const Row row = make_row(vocab, kind, seed * 131 + static_cast<uint64_t>(kind));
                    for (int i = 0; i < 4; ++i, ++draws) {
                        const int32_t want = cpu.sample(row.values, {});
                        const int32_t got = gpu_draw(row, o, gpu.next_uniform());
                        QVERIFY2(got == want, qPrintable(QString("vocab %1 kind %2 seed %3 draw %4: GPU %5, CPU %6")
                                                             .arg(vocab).arg(kind).arg(seed).arg(i).arg(got).arg(want)));
                    }
                }
        qInfo("%d draws, all the CPU sampler's tokens", draws);
    }

    // Top-p over an evenly spread set of draws: every token is inside the nucleus, and each token's
    // share of the draws is its share of the nucleus's probability.
    void top_p_distribution() {
        const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.5f, 0.0f, -1.0f, -3.0f, 1.5f};
        Row row;
        for (float v : logits) {
            row.bits.push_back(float_to_bf16(v));
            row.values.push_back(bf16_to_float(row.bits.back()));
        }
        SamplingOptions o;
        o.temperature = 1.0f;
        o.top_p = 0.8f;
        // The nucleus by hand: sort by logit (ties: lower id), smallest prefix with mass >= 0.8.
        std::vector<int> order(logits.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
        double z = 0;
        for (float v : logits) z += std::exp(v - 2.0);
        std::map<int, double> nucleus;
        double cum = 0;
        for (int id : order) {
            nucleus[id] = std::exp(logits[id] - 2.0) / z;
            cum += nucleus[id];
            if (cum >= 0.8) break;
        }
        QCOMPARE(static_cast<int>(nucleus.size()), 4);  // 2.0, 1.5, 1.0, then 0.5 (id 2)
        const int draws = 2000;
        std::map<int, int> seen;
        for (int i = 0; i < draws; ++i) seen[gpu_draw(row, o, (i + 0.5) / draws)]++;
        for (auto [id, count] : seen) {
            QVERIFY2(nucleus.count(id), qPrintable(QString("token %1 is outside the nucleus").arg(id)));
            const double want = nucleus[id] / cum;
            QVERIFY2(std::fabs(count / double(draws) - want) <= 1.0 / draws + 1e-9,
                     qPrintable(QString("token %1: %2 of the draws, its probability %3").arg(id).arg(count / double(draws)).arg(want)));
        }
        QCOMPARE(seen.size(), nucleus.size());
    }

    // decode_and_sample draws what decode + the CPU sampler draw from the same logits.
    void engine_sampling_matches_cpu() {
        auto m = load_model(tiny_model("tiny-a"));
        auto gpu = cuda_engine(m);
        const auto prompt = prompt_tokens(*m, 300);
        for (float temperature : {0.0f, 0.9f}) {
            SamplingOptions o;
            o.temperature = temperature;
            o.top_p = 0.9f;
            o.seed = 42;
            const std::vector<int32_t> head(prompt.begin(), prompt.end() - 1);
            std::vector<int32_t> on_gpu, on_cpu;
            {
                auto seq = gpu->new_sequence();
                run_sequence(*gpu, *seq, head, 0, 299, {});
                Sampler s(o);
                int32_t t = prompt.back();
                for (int i = 0; i < 24; ++i) {
                    auto r = gpu->decode_and_sample(*seq, t, s);
                    QVERIFY2(r.is_ok(), r.status().message().c_str());
                    on_gpu.push_back(t = r.value());
                }
            }
            {
                auto seq = gpu->new_sequence();
                run_sequence(*gpu, *seq, head, 0, 299, {});
                Sampler s(o);
                int32_t t = prompt.back();
                for (int i = 0; i < 24; ++i) {
                    std::vector<float> logits;
                    QVERIFY(gpu->decode(*seq, t, &logits).is_ok());
                    on_cpu.push_back(t = s.sample(std::move(logits), seq->tokens()));
                }
            }
            QCOMPARE(on_gpu, on_cpu);
        }
    }

    // Steps recorded as CUDA graphs compute exactly what the same launches one by one compute,
    // across a C1/C2 entry, the dense -> sparse boundary (8192) and the sequence's growth.
    void graph_matches_eager() {
        auto m = load_model(tiny_model("tiny-a"));
        auto gpu = cuda_engine(m);
        auto& cu = as_cuda(*gpu);
        QVERIFY(cu.decode_graphs() || qEnvironmentVariable("QUIRE_CUDA_GRAPH") == "0");
        const int64_t start = 8170, steps = 40;
        const auto tokens = prompt_tokens(*m, start + steps);
        std::vector<std::vector<float>> logits[2];
        double ms[2] = {0, 0};
        for (int graph = 0; graph < 2; ++graph) {
            cu.set_decode_graphs(graph == 1);
            logits[graph] = decode_steps(*gpu, tokens, start, &ms[graph]);
            QVERIFY(graph == 0 || cu.decode_graphs());  // no fallback happened
        }
        for (int64_t i = 0; i < steps; ++i)
            QVERIFY2(logits[0][static_cast<size_t>(i)] == logits[1][static_cast<size_t>(i)],
                     qPrintable(QString("position %1: graph and eager logits differ (max %2)")
                                    .arg(start + i)
                                    .arg(max_abs_diff(logits[0][static_cast<size_t>(i)], logits[1][static_cast<size_t>(i)]))));
        QVERIFY(cu.last_step_nodes() > 0);
        qInfo("graph nodes in the last decode step: %lld; %lld instantiations (%lld after a refused update) over %lld steps; tiny-a "
              "host-bound step (logits copied back): %.3f ms eager, %.3f ms with graphs",
              static_cast<long long>(cu.last_step_nodes()), static_cast<long long>(cu.graph_instantiations()),
              static_cast<long long>(cu.graph_refused_updates()), static_cast<long long>(steps),
              ms[0] / static_cast<double>(steps - 2), ms[1] / static_cast<double>(steps - 2));
    }

    // A step's layers as graphs of doubling length (layers 0, 1, 2-3, 4-7, ...) or one graph per
    // layer (QUIRE_CUDA_GRAPH_SEGMENTS=layer, read when the engine is made): the same launches, so
    // the same logits bit for bit, in as many graphs as the rule says.
    void graph_segments_match_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<qint64>("start");
        QTest::newRow("tiny-a, dense") << "tiny-a" << qint64{300};
        QTest::newRow("tiny-a, into the sparse regime") << "tiny-a" << qint64{8180};
        QTest::newRow("4-bit, into the sparse regime") << "tiny-a-gptq4-g128" << qint64{8180};
    }
    void graph_segments_match() {
        QFETCH(QString, model);
        QFETCH(qint64, start);
        auto m = load_model(tiny_model(qPrintable(model)));
        const int64_t layers = m->config().num_hidden_layers, steps = 16;
        const auto tokens = prompt_tokens(*m, start + steps);
        std::vector<std::vector<float>> logits[2];
        const QByteArray saved = qgetenv("QUIRE_CUDA_GRAPH_SEGMENTS");
        const bool was_set = qEnvironmentVariableIsSet("QUIRE_CUDA_GRAPH_SEGMENTS");
        for (int per_layer = 0; per_layer < 2; ++per_layer) {
            if (per_layer) qputenv("QUIRE_CUDA_GRAPH_SEGMENTS", "layer");
            else qunsetenv("QUIRE_CUDA_GRAPH_SEGMENTS");
            auto gpu = cuda_engine(m);
            if (was_set) qputenv("QUIRE_CUDA_GRAPH_SEGMENTS", saved);
            else qunsetenv("QUIRE_CUDA_GRAPH_SEGMENTS");
            auto& cu = as_cuda(*gpu);
            if (!cu.decode_graphs()) QSKIP("CUDA graphs are off (QUIRE_CUDA_GRAPH=0)");
            logits[per_layer] = decode_steps(*gpu, tokens, start);
            int doubling = 1;  // the last segment, and one ending before each power of two below `layers`
            for (int64_t p = 1; p < layers; p *= 2) ++doubling;
            QCOMPARE(cu.last_step_segments(), per_layer ? static_cast<int>(layers) : doubling);
        }
        for (int64_t i = 0; i < steps; ++i)
            QVERIFY2(logits[0][static_cast<size_t>(i)] == logits[1][static_cast<size_t>(i)],
                     qPrintable(QString("position %1: doubling and per-layer segments give different logits").arg(start + i)));
    }

    // Gates fused into the GEMVs, Lightning's q/k norm + RoPE into the Lightning kernel, a sparse
    // layer's k and v into its q's GEMV: bit for bit the logits of the separate kernels, with fewer
    // kernels per step (graph nodes, printed for the benchmark notes: every layer of a kind runs the
    // same launches at any model size).
    void fused_gates_match_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("tiny-a") << "tiny-a";                        // bf16 GEMVs
        QTest::newRow("tiny-a-gptq4-g128") << "tiny-a-gptq4-g128";  // 4-bit tensor-core GEMVs (o_gate / z_proj in bf16)
    }
    void fused_gates_match() {
        QFETCH(QString, model);
        auto m = load_model(tiny_model(model.toUtf8().constData()));
        auto gpu = cuda_engine(m);
        auto& cu = as_cuda(*gpu);
        const int64_t start = 8180, steps = 24;
        const auto tokens = prompt_tokens(*m, start + steps);
        std::vector<std::vector<float>> logits[2];
        int64_t nodes[2] = {0, 0};
        for (int fused = 0; fused < 2; ++fused) {
            cu.set_fused_gates(fused == 1);
            logits[fused] = decode_steps(*gpu, tokens, start);
            nodes[fused] = cu.last_step_nodes();
        }
        for (int64_t i = 0; i < steps; ++i)
            QVERIFY2(logits[0][static_cast<size_t>(i)] == logits[1][static_cast<size_t>(i)],
                     qPrintable(QString("position %1: fused and separate gates differ").arg(start + i)));
        const auto layers = static_cast<double>(m->config().num_hidden_layers);
        qInfo("kernels (graph nodes) per decode step, %s, %g layers: separate gates %lld (%.2f per layer), fused %lld (%.2f per layer)",
              qPrintable(model), layers, static_cast<long long>(nodes[0]), static_cast<double>(nodes[0]) / layers, static_cast<long long>(nodes[1]),
              static_cast<double>(nodes[1]) / layers);
        if (cu.decode_graphs()) QVERIFY(nodes[1] < nodes[0]);
    }

    // A 4-bit checkpoint's bf16 layers (o_gate, z_proj): in their own GEMV after the 4-bit one, on
    // the side stream beside it (QUIRE_CUDA_SIDE_STREAM=1), or read in the 4-bit GEMV's launch (the
    // default): the same logits bit for bit, with graphs and without; joined, a step has fewer kernels.
    void bf16_layers_match_every_way() {
        auto m = load_model(tiny_model("tiny-a-gptq4-g128"));
        auto gpu = cuda_engine(m);
        auto& cu = as_cuda(*gpu);
        QVERIFY(cu.has_side_stream());
        const int64_t start = 8180, steps = 16;
        const auto tokens = prompt_tokens(*m, start + steps);
        struct Way {
            const char* name;
            bool side, join;
        };
        const Way ways[] = {{"separate", false, false}, {"side stream", true, false}, {"joined", false, true}};
        for (int graph = 0; graph < 2; ++graph) {
            cu.set_decode_graphs(graph == 1);
            std::vector<std::vector<float>> logits[3];
            int64_t nodes[3] = {};
            for (int w = 0; w < 3; ++w) {
                cu.set_side_stream(ways[w].side);
                cu.set_join_bf16(ways[w].join);
                const int64_t joined = cu.joined_bf16_launches();
                logits[w] = decode_steps(*gpu, tokens, start);
                nodes[w] = cu.last_step_nodes();
                // Recorded or launched: the joined launch is taken exactly when asked for.
                QVERIFY2((cu.joined_bf16_launches() > joined) == ways[w].join,
                         qPrintable(QString("%1 (%2): %3 joined launches").arg(ways[w].name).arg(graph ? "graphs" : "eager").arg(cu.joined_bf16_launches() - joined)));
            }
            for (int w = 1; w < 3; ++w)
                for (int64_t i = 0; i < steps; ++i)
                    QVERIFY2(logits[0][static_cast<size_t>(i)] == logits[w][static_cast<size_t>(i)],
                             qPrintable(QString("position %1 (%2): %3 and separate differ").arg(start + i).arg(graph ? "graphs" : "eager").arg(ways[w].name)));
            if (graph == 1 && cu.decode_graphs())
                QVERIFY2(nodes[2] < nodes[0], qPrintable(QString("joined %1 nodes, separate %2").arg(nodes[2]).arg(nodes[0])));
        }
        cu.set_side_stream(false);  // the defaults
        cu.set_join_bf16(true);
        cu.set_decode_graphs(true);
    }

    // The decode GEMV at the real model's shapes (tests/data/real_config: hidden 4096, MLP 16384,
    // 24 Lightning and 8 sparse layers), every kernel variant: the same output bit for bit, and the
    // bytes read per second next to a device-to-device copy of the same bytes (read + written per
    // second, as quire-bench's floor). Printed, not asserted: tests are not benchmarks.
    void gemv_bandwidth() {
        struct Shape {
            const char* name;
            int64_t rows, cols, per_step;  // per_step: how many a decode step runs
        };
        const Shape shapes[] = {{"lightning q,k,v,gate", 4 * 4096, 4096, 24}, {"sparse q,gate", 2 * 4096, 4096, 8}, {"sparse k,v", 512, 4096, 8},
                                {"o", 4096, 4096, 32},   {"mlp gate,up", 2 * 16384, 4096, 32}, {"mlp down", 4096, 16384, 32},
                                {"lm head", 73448, 4096, 1}};
        const int64_t most = 73448LL * 4096;
        DeviceBuffer<uint16_t> w(most), copy(most), x(16384), y(73448);
        QVERIFY(w.ok() && copy.ok() && x.ok() && y.ok());
        QCOMPARE(kernels::launch_fill_random_bf16(w.get(), most, 7, 0.02f, nullptr), cudaSuccess);
        QCOMPARE(kernels::launch_fill_random_bf16(x.get(), 16384, 8, 1.0f, nullptr), cudaSuccess);
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        // Each repetition reads another slice of w, so small matrices are not served from L2 (a
        // decode step streams 18 GB: nothing it reads is in L2 from the step before).
        auto time_ms = [&](auto&& run) {
            for (int i = 0; i < 3; ++i) run(i);
            cudaEventRecord(e0);
            constexpr int reps = 20;
            for (int i = 0; i < reps; ++i) run(i);
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            return static_cast<double>(ms) / reps;
        };
        std::vector<std::vector<uint16_t>> reference;
        double copy_step_ms = 0;
        std::vector<double> copy_ms;
        for (const Shape& sh : shapes) {
            const int64_t n = sh.rows * sh.cols, slices = std::min<int64_t>(20, most / n);
            const double ms = time_ms([&](int i) {
                const int64_t at = (i % slices) * n;
                cudaMemcpyAsync(copy.get() + at, w.get() + at, static_cast<size_t>(n) * 2, cudaMemcpyDeviceToDevice, nullptr);
            });
            copy_ms.push_back(ms);
            copy_step_ms += ms / 2 * static_cast<double>(sh.per_step);  // reading alone at the copy's rate
        }
        for (int v = 0; v < kernels::gemv_variant_count(); ++v) {
            kernels::set_gemv_variant(v);
            double step_ms = 0;
            QString line;
            for (size_t i = 0; i < std::size(shapes); ++i) {
                const Shape& sh = shapes[i];
                const int64_t n = sh.rows * sh.cols, slices = std::min<int64_t>(20, most / n);
                const double ms = time_ms([&](int r) { kernels::launch_gemv_bf16(w.get() + (r % slices) * n, sh.rows, sh.cols, x.get(), 1, y.get(), nullptr); });
                QCOMPARE(kernels::launch_gemv_bf16(w.get(), sh.rows, sh.cols, x.get(), 1, y.get(), nullptr), cudaSuccess);
                QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
                std::vector<uint16_t> out = y.download();
                out.resize(static_cast<size_t>(sh.rows));
                if (v == 0) reference.push_back(out);
                else QVERIFY2(out == reference[i], qPrintable(QString("variant %1, %2: not the default kernel's output").arg(v).arg(sh.name)));
                const double bytes = static_cast<double>(sh.rows * sh.cols) * 2;
                const double copy_rate = 2 * bytes / (copy_ms[i] / 1000);
                line += QString(" %1 %2 GB/s (%3%);").arg(sh.name).arg(bytes / (ms / 1000) / 1e9, 0, 'f', 0).arg(100 * (bytes / (ms / 1000)) / copy_rate, 0, 'f', 1);
                step_ms += ms * static_cast<double>(sh.per_step);
            }
            qInfo("GEMV variant %d: a decode step's GEMVs %.3f ms, reading at the copy's rate %.3f ms: %.1f%% of the copy bandwidth;%s", v,
                  step_ms, copy_step_ms, 100 * copy_step_ms / step_ms, qPrintable(line));
        }
        kernels::set_gemv_variant(0);
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        QVERIFY(w.guard_intact() && y.guard_intact());
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuDecode)
#include "test_gpu_decode.moc"
