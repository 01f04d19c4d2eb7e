// The CUDA backend against the CPU engine (bf16 mode) on the tiny models: the same logits within
// the bf16 noise of two implementations (docs/correctness.md), chunked = one shot, save -> load ->
// continue bit-identical on the GPU, a GPU state read by the CPU engine, the memory refusal.
#include <QFileInfo>
#include <QTemporaryDir>
#include <QtTest>

#include "cuda/cuda_sequence.h"
#include "engine_test_support.h"
#include "gpu_engine_support.h"
#include "gpu_test_main.h"

using namespace quire;
using namespace quire::test;

namespace {
// As test_golden's bf16 bound: two bf16 implementations that round at the same points.
constexpr double kRelRms = 0.03;
}  // namespace

class TestGpuEngine : public QObject {
    Q_OBJECT
private slots:
    void matches_cpu_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("tiny-a") << "tiny-a";
        QTest::newRow("tiny-g16") << "tiny-g16";
        // GPTQ checkpoints (docs/quantization.md): the CPU engine dequantizes exactly inside its GEMM;
        // the GPU's prefill rounds the dequantized weights to bf16 and its decode GEMV reads the words.
        // tiny-a-gptq4-g128 has the community checkpoint's format, which decodes on tensor cores.
        for (const char* q : {"tiny-a-gptq4-sala", "tiny-a-gptq4-asym", "tiny-a-gptq8-act", "tiny-a-gptq8-asym", "tiny-a-gptq4-mixed",
                              "tiny-a-gptq4-g128"})
            QTest::newRow(q) << q;
    }
    void matches_cpu() {
        QFETCH(QString, model);
        auto m = load_model(tiny_model(model.toUtf8().constData()));
        auto cpu = make_engine(m, Precision::bf16);
        auto gpu = cuda_engine(m);
        const int64_t n = 9103;
        const auto tokens = random_tokens(n, m->config().vocab_size, 77);
        const std::vector<int64_t> positions = {10, 1000, 6143, 6144, 8190, 8191, 8192, 9000, n - 1};
        const Rows c = run_fresh(*cpu, tokens, 0, n, positions);
        const Rows g = run_fresh(*gpu, tokens, 0, n, positions);
        const Rows gc = run_fresh(*gpu, tokens, 777, 9050, positions);  // chunked, then decoded
        double worst = 0, worst_chunked = 0;
        for (int64_t p : positions) {
            QVERIFY(all_finite(g.at(p)));
            const double d = rel_rms(g.at(p), c.at(p));
            worst = std::max(worst, d);
            QVERIFY2(d <= kRelRms, qPrintable(QString("position %1: rel-RMS %2").arg(p).arg(d)));
            if (top_margin(c.at(p)) > 2.0f * max_abs_diff(g.at(p), c.at(p))) QCOMPARE(argmax(g.at(p)), argmax(c.at(p)));
            const double dc = rel_rms(gc.at(p), g.at(p));
            worst_chunked = std::max(worst_chunked, dc);
            QVERIFY2(dc <= kRelRms, qPrintable(QString("chunked, position %1: rel-RMS %2").arg(p).arg(dc)));
        }
        qInfo("%s: CUDA vs CPU max rel-RMS %.4g; CUDA chunked+decode vs one shot %.4g", qPrintable(model), worst, worst_chunked);
    }

    // A float16 checkpoint is converted to bf16 when loaded (docs/model.md §6): on the GPU it gives
    // exactly the logits of its bf16 twin with the same values, prefill and decode.
    void float16_checkpoint_matches_bf16_twin() {
        auto half = load_model(tiny_model("tiny-a-gptq4-f16"));
        auto twin = load_model(tiny_model("tiny-a-gptq4-f16twin"));
        QCOMPARE(half->config().dtype, std::string("float16"));
        QCOMPARE(twin->config().dtype, std::string("bfloat16"));
        auto gh = cuda_engine(half);
        auto gt = cuda_engine(twin);
        const int64_t n = 8300;
        const auto tokens = random_tokens(n, half->config().vocab_size, 5);
        const std::vector<int64_t> positions = {10, 4095, 8191, 8192, 8250, n - 1};
        const Rows a = run_fresh(*gh, tokens, 8250, n, positions);  // prefill 8250, then decode to the end
        const Rows b = run_fresh(*gt, tokens, 8250, n, positions);
        for (int64_t p : positions) {
            QVERIFY(all_finite(a.at(p)));
            QVERIFY2(a.at(p) == b.at(p), qPrintable(QString("position %1: float16 and its bf16 twin differ (max %2)")
                                                         .arg(p)
                                                         .arg(max_abs_diff(a.at(p), b.at(p)))));
        }
    }

    void state_round_trip() {
        auto m = load_model(tiny_model("tiny-a"));
        auto gpu = cuda_engine(m);
        const auto tokens = random_tokens(8500, m->config().vocab_size, 5);
        const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + 8300);
        auto seq = gpu->new_sequence();
        run_sequence(*gpu, *seq, prefix, 1000, 8300, {});
        QTemporaryDir dir;
        const std::string path = dir.path().toStdString() + "/gpu.qstate";
        QVERIFY(gpu->save_state(*seq, path).is_ok());
        QCOMPARE(gpu->state_file_bytes(*seq), static_cast<int64_t>(QFileInfo(QString::fromStdString(path)).size()));
        const std::vector<int64_t> positions = {8310, 8499};
        const Rows straight = run_sequence(*gpu, *seq, tokens, 100, 8400, positions);
        auto loaded = gpu->load_state(path, &prefix);
        QVERIFY2(loaded.is_ok(), loaded.status().message().c_str());
        const Rows resumed = run_sequence(*gpu, *loaded.value(), tokens, 100, 8400, positions);
        for (int64_t p : positions) QCOMPARE(max_abs_diff(straight.at(p), resumed.at(p)), 0.0f);
        // The CPU engine continues from the GPU's state (bf16 sections) within the bf16 noise.
        auto cpu = make_engine(m, Precision::bf16);
        auto on_cpu = cpu->load_state(path, &prefix);
        QVERIFY2(on_cpu.is_ok(), on_cpu.status().message().c_str());
        const Rows cpu_rows = run_sequence(*cpu, *on_cpu.value(), tokens, 100, 8400, positions);
        for (int64_t p : positions) QVERIFY(rel_rms(cpu_rows.at(p), straight.at(p)) <= kRelRms);
        // A fork shares its parent's cache rows instead of copying them, and continues independently:
        // the parent grows first (its buffers move), then the child; both match a straight run.
        auto parent = gpu->new_sequence();
        run_sequence(*gpu, *parent, prefix, 0, 8300, {});
        auto child = parent->fork();
        QVERIFY(child);
        const auto owned = [](const Sequence& q) { return dynamic_cast<const cuda::CudaSequence&>(q).owned_bytes(); };
        QVERIFY2(owned(*child) * 4 < owned(*parent), qPrintable(QString("child owns %1 bytes, parent %2").arg(owned(*child)).arg(owned(*parent))));
        const Rows b = run_sequence(*gpu, *parent, tokens, 0, 8400, {8399});
        const Rows a = run_sequence(*gpu, *child, tokens, 0, 8400, {8399});
        QCOMPARE(max_abs_diff(a.at(8399), b.at(8399)), 0.0f);
        // A fork of that fork (shared prefix, the child's own rows copied), and a state saved from a
        // fork (prefix and own rows joined) continue exactly like the child.
        std::vector<int32_t> longer = tokens;
        for (int i = 0; i < 60; ++i) longer.push_back(static_cast<int32_t>(7 + i));
        auto grandchild = child->fork();
        QVERIFY(grandchild);
        const std::string fork_path = dir.path().toStdString() + "/fork.qstate";
        QVERIFY(gpu->save_state(*child, fork_path).is_ok());
        auto from_file = gpu->load_state(fork_path, &tokens);
        QVERIFY2(from_file.is_ok(), from_file.status().message().c_str());
        const auto n = static_cast<int64_t>(tokens.size()), last = n + 59;
        const Rows c = run_sequence(*gpu, *child, longer, 0, n + 30, {last});
        const Rows g = run_sequence(*gpu, *grandchild, longer, 0, n + 30, {last});
        const Rows f = run_sequence(*gpu, *from_file.value(), longer, 0, n + 30, {last});
        QCOMPARE(max_abs_diff(c.at(last), g.at(last)), 0.0f);
        QCOMPARE(max_abs_diff(c.at(last), f.at(last)), 0.0f);
    }

    void refuses_what_does_not_fit() {
        auto m = load_model(tiny_model("tiny-a"));
        auto gpu = cuda_engine(m);
        std::vector<int32_t> huge(static_cast<size_t>(150'000'000), 5);
        auto seq = gpu->new_sequence();
        PrefillRequest req;
        req.tokens = huge;
        const Status st = gpu->prefill(*seq, req, nullptr);
        QCOMPARE(st.code(), ErrorCode::out_of_memory);
        QVERIFY2(st.message().find("GiB free") != std::string::npos && st.message().find("the GPU has") != std::string::npos, st.message().c_str());
        QCOMPARE(seq->length(), int64_t(0));
        // Chunked, the same request is refused before its first chunk, naming what it needs.
        req.chunk = 8192;
        const Status chunked = gpu->prefill(*seq, req, nullptr);
        QCOMPARE(chunked.code(), ErrorCode::out_of_memory);
        QVERIFY2(chunked.message().find("a context of 150000000 tokens needs") != std::string::npos, chunked.message().c_str());
        QCOMPARE(seq->length(), int64_t(0));
        QCOMPARE(gpu->counters().forward_calls, int64_t(0));
        // Still usable afterwards.
        const Rows r = run_fresh(*gpu, random_tokens(300, m->config().vocab_size, 1), 0, 300, {299});
        QVERIFY(all_finite(r.at(299)));
    }

    // --gpu-memory: the engine plans inside the budget and refuses up front, with the numbers.
    void keeps_within_a_gpu_memory_budget() {
        auto m = load_model(tiny_model("tiny-a"));
        EngineOptions tight;
        tight.gpu_memory_budget_bytes = 300LL << 20;  // below the CUDA context alone
        auto refused = create_engine(m, Backend::cuda, tight);
        QVERIFY(!refused);
        QCOMPARE(refused.status().code(), ErrorCode::out_of_memory);
        QVERIFY2(refused.status().message().find("GPU memory budget of 0.29 GiB") != std::string::npos, refused.status().message().c_str());

        EngineOptions one_gib;
        one_gib.gpu_memory_budget_bytes = 1LL << 30;
        auto e = create_engine(m, Backend::cuda, one_gib);
        QVERIFY2(e.is_ok(), e.status().message().c_str());
        Engine& gpu = *e.value();
        // A 300-token read fits; 20M tokens of tiny-a's state do not, and nothing is computed.
        const Rows r = run_fresh(gpu, random_tokens(300, m->config().vocab_size, 1), 0, 300, {299});
        QVERIFY(all_finite(r.at(299)));
        const int64_t calls = gpu.counters().forward_calls;
        std::vector<int32_t> huge(static_cast<size_t>(20'000'000), 5);
        auto seq = gpu.new_sequence();
        PrefillRequest req;
        req.tokens = huge;
        req.chunk = 8192;
        const Status st = gpu.prefill(*seq, req, nullptr);
        QCOMPARE(st.code(), ErrorCode::out_of_memory);
        QVERIFY2(st.message().find("over the GPU memory budget of 1.00 GiB (--gpu-memory)") != std::string::npos, st.message().c_str());
        QVERIFY2(st.message().find("The longest context that fits the budget is about") != std::string::npos, st.message().c_str());
        QCOMPARE(gpu.counters().forward_calls, calls);
        QCOMPARE(seq->length(), int64_t(0));
    }

    void refuses_a_gpu_that_does_not_exist() {
        auto m = load_model(tiny_model("tiny-a"));
        EngineOptions options;
        options.gpu = 99;
        auto e = create_engine(m, Backend::cuda, options);
        QVERIFY(!e);
        QVERIFY2(e.status().message().find("GPU 99 does not exist") != std::string::npos, e.status().message().c_str());
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuEngine)
#include "test_gpu_engine.moc"
