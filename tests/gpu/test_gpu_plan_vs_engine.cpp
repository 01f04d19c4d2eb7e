// The GPU memory planner (engine/gpu_memory_plan.h) against what the CUDA engine really allocates:
// the real 9B configuration with random weights, read to 131,072 tokens in chunks of 8,192. The
// device memory in use (cudaMemGetInfo) grows by the planned weights when the engine is created and
// by the planned state and workspace when the library is read.
#include <QtTest>

#include <cuda_runtime.h>

#include "engine_test_support.h"
#include "gpu_memory_plan.h"
#include "gpu_test_main.h"

using namespace quire;
using namespace quire::test;

namespace {
int64_t used_bytes() {
    size_t free_b = 0, total_b = 0;
    cudaDeviceSynchronize();
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return -1;
    return static_cast<int64_t>(total_b - free_b);
}
double gib(int64_t b) { return static_cast<double>(b) / double(1LL << 30); }
}  // namespace

class TestGpuPlanVsEngine : public QObject {
    Q_OBJECT
private slots:
    void the_plan_matches_the_engine() {
        auto model = Model::synthetic(QUIRE_TEST_DATA_DIR "/real_config");
        QVERIFY2(model, model ? "" : model.status().message().c_str());
        const ModelConfig& c = model.value()->config();
        const int64_t n = 131072, chunk = 8192;
        const GpuMemoryPlan plan = plan_gpu_memory(c, WeightFormat::bf16(), n, chunk);
        const int64_t before = used_bytes();
        auto engine = create_engine(model.value(), Backend::cuda, {});
        QVERIFY2(engine, engine ? "" : engine.status().message().c_str());
        const int64_t loaded = used_bytes();
        auto seq = engine.value()->new_sequence();
        const std::vector<int32_t> tokens = random_tokens(n, c.vocab_size, 7);
        PrefillRequest req;
        req.tokens = tokens;
        req.chunk = chunk;
        QVERIFY(engine.value()->prefill(*seq, req, nullptr).is_ok());
        const int64_t read = used_bytes();
        qInfo("before the engine %.2f GiB; weights: engine %.3f GiB, plan %.3f GiB; state + workspace: engine %.3f GiB, plan %.3f GiB "
              "(state %.3f, workspace %.3f); in use %.2f GiB, plan with the CUDA context %.2f GiB",
              gib(before), gib(loaded - before), gib(plan.weights), gib(read - loaded), gib(plan.state + plan.workspace.total()),
              gib(plan.state), gib(plan.workspace.total()), gib(read), gib(plan.total()));
        QVERIFY(std::abs(gib(loaded - before) - gib(plan.weights)) / gib(plan.weights) < 0.03);
        QVERIFY(std::abs(gib(read - loaded) - gib(plan.state + plan.workspace.total())) / gib(plan.state + plan.workspace.total()) < 0.10);
        // What a decoding fork of this prefix takes today (the answer's rows), for the budget's record.
        auto fork = seq->fork();
        QVERIFY(fork != nullptr);
        std::vector<float> logits;
        QVERIFY(engine.value()->decode(*fork, 5, &logits).is_ok());
        qInfo("a fork decoding one token after %lld tokens took %.3f GiB more", static_cast<long long>(n), gib(used_bytes() - read));
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuPlanVsEngine)
#include "test_gpu_plan_vs_engine.moc"
