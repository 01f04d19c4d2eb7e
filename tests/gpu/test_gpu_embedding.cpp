// Embedding kernel against its CPU twin, with guard bytes after the output.
#include <cuda_runtime.h>

#include <QtTest>

#include <random>
#include <vector>

#include "bf16.h"
#include "embedding.h"
#include "gpu_test_main.h"

class TestGpuEmbedding : public QObject {
    Q_OBJECT
private slots:
    void matches_cpu() {
        const int64_t vocab = 1000, hidden = 384, n = 77, guard = 64;
        std::mt19937 rng(7);
        std::normal_distribution<float> dist(0.f, 0.5f);
        std::vector<uint16_t> table(static_cast<size_t>(vocab * hidden));
        for (auto& v : table) v = quire::float_to_bf16(dist(rng));
        std::vector<int32_t> ids(static_cast<size_t>(n));
        for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
        ids[5] = -3;  // invalid ids give a zero row
        uint16_t *d_table, *d_out;
        int32_t* d_ids;
        QCOMPARE(cudaMalloc(&d_table, table.size() * 2), cudaSuccess);
        QCOMPARE(cudaMalloc(&d_out, static_cast<size_t>((n * hidden + guard) * 2)), cudaSuccess);
        QCOMPARE(cudaMalloc(&d_ids, ids.size() * 4), cudaSuccess);
        cudaMemcpy(d_table, table.data(), table.size() * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(d_ids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice);
        cudaMemset(d_out, 0xAB, static_cast<size_t>((n * hidden + guard) * 2));
        QCOMPARE(quire::kernels::launch_embedding(d_table, vocab, hidden, d_ids, n, 12.0f, d_out, nullptr), cudaSuccess);
        QCOMPARE(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<uint16_t> out(static_cast<size_t>(n * hidden + guard));
        cudaMemcpy(out.data(), d_out, out.size() * 2, cudaMemcpyDeviceToHost);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < hidden; ++i) {
                const int32_t id = ids[static_cast<size_t>(t)];
                const float want = id < 0 ? 0.f : quire::round_bf16(quire::bf16_to_float(table[static_cast<size_t>(id * hidden + i)]) * 12.0f);
                QCOMPARE(quire::bf16_to_float(out[static_cast<size_t>(t * hidden + i)]), want);
            }
        for (int64_t g = 0; g < guard; ++g) QCOMPARE(out[static_cast<size_t>(n * hidden + g)], uint16_t(0xABAB));
        cudaFree(d_table);
        cudaFree(d_out);
        cudaFree(d_ids);
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuEmbedding)
#include "test_gpu_embedding.moc"
