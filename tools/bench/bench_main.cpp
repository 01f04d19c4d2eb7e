// quire-bench: prefill and decode speed of the CUDA engine on a model folder (the real 9B
// configuration with random weights in docs/benchmarks.md), with the cuBLAS GEMM time of the
// model's linear layers alone as the floor a prefill can reach. Not a test.
//   quire-bench MODEL_DIR [--lengths 8192,32768] [--chunk 8192] [--decode 16] [--budget-s 400]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine.h"
#include "model.h"

using namespace quire;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double used_gib() {
    size_t f = 0, t = 0;
    cudaMemGetInfo(&f, &t);
    return static_cast<double>(t - f) / double(1LL << 30);
}
// Seconds the model's linear layers alone take for `tokens` tokens (one chunk), through cuBLAS
// with the engine's settings: the floor any prefill of that chunk can reach.
double gemm_floor(const ModelConfig& c, int64_t tokens) {
    std::vector<std::pair<int64_t, int64_t>> shapes;  // (out, in)
    for (MixerType t : c.mixer_types) {
        const int64_t h = c.hidden_size;
        if (t == MixerType::sparse) {
            const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
            shapes.insert(shapes.end(), {{q, h}, {kv, h}, {kv, h}, {q, h}, {h, q}});
        } else {
            const int64_t w = c.lightning_nh * c.lightning_head_dim;
            shapes.insert(shapes.end(), {{w, h}, {w, h}, {w, h}, {w, h}, {h, w}});
        }
        shapes.insert(shapes.end(), {{c.intermediate_size, h}, {c.intermediate_size, h}, {h, c.intermediate_size}});
    }
    int64_t max_w = 0, max_in = 0, max_out = 0;
    for (auto [o, i] : shapes) {
        max_w = std::max(max_w, o * i);
        max_in = std::max(max_in, i);
        max_out = std::max(max_out, o);
    }
    void *w = nullptr, *x = nullptr, *y = nullptr;
    cudaMalloc(&w, static_cast<size_t>(max_w) * 2);
    cudaMalloc(&x, static_cast<size_t>(tokens * max_in) * 2);
    cudaMalloc(&y, static_cast<size_t>(tokens * max_out) * 2);
    cudaMemset(w, 0x3c, static_cast<size_t>(max_w) * 2);  // bf16 ~0.01: not zeros, which run faster
    cudaMemset(x, 0x3c, static_cast<size_t>(tokens * max_in) * 2);
    cublasHandle_t blas;
    cublasCreate(&blas);
    cublasSetMathMode(blas, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    const float one = 1, zero = 0;
    auto run = [&] {
        for (auto [o, i] : shapes)
            cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(o), static_cast<int>(tokens), static_cast<int>(i), &one, w,
                         CUDA_R_16BF, static_cast<int>(i), x, CUDA_R_16BF, static_cast<int>(i), &zero, y, CUDA_R_16BF,
                         static_cast<int>(o), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    run();  // warm-up
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    std::vector<float> ms;
    for (int rep = 0; rep < 5; ++rep) {
        cudaEventRecord(a);
        run();
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float t = 0;
        cudaEventElapsedTime(&t, a, b);
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    cublasDestroy(blas);
    cudaFree(w);
    cudaFree(x);
    cudaFree(y);
    return ms[ms.size() / 2] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: quire-bench MODEL_DIR [--lengths L1,L2] [--chunk N] [--decode N] [--budget-s S]\n");
        return 2;
    }
    std::vector<int64_t> lengths{8192, 32768};
    int64_t chunk = 8192, decode = 16;
    double budget = 400;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--lengths") {
            lengths.clear();
            std::stringstream ss(v);
            for (std::string x; std::getline(ss, x, ',');) lengths.push_back(std::stoll(x));
        } else if (a == "--chunk") chunk = std::stoll(v);
        else if (a == "--decode") decode = std::stoll(v);
        else if (a == "--budget-s") budget = std::stod(v);
    }
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    const double t_load = now();
    auto model = Model::load(argv[1]);
    if (!model) {
        std::fprintf(stderr, "%s\n", model.status().message().c_str());
        return 1;
    }
    auto engine = create_engine(model.value(), Backend::cuda, {});
    if (!engine) {
        std::fprintf(stderr, "%s\n", engine.status().message().c_str());
        return 1;
    }
    std::printf("device: %s; model: %s; weights on GPU in %.1f s, %.2f GiB used\n", prop.name, argv[1], now() - t_load, used_gib());
    const double floor_chunk = gemm_floor(model.value()->config(), chunk);
    std::printf("cuBLAS floor: the linear layers alone take %.1f ms per %lld-token chunk (%.0f tokens/s)\n", floor_chunk * 1000.0,
                static_cast<long long>(chunk), static_cast<double>(chunk) / floor_chunk);
    const double t_start = now();
    std::mt19937 rng(3);
    std::printf("| context | prefill s | prefill tokens/s | decode ms/token | GPU memory used GiB |\n|---|---|---|---|---|\n");
    for (int64_t L : lengths) {
        std::vector<int32_t> tokens(static_cast<size_t>(L));
        for (auto& t : tokens) t = static_cast<int32_t>(3 + rng() % 70000);
        auto seq = engine.value()->new_sequence();
        PrefillRequest req;
        req.tokens = tokens;
        req.chunk = chunk;
        double peak = 0;
        req.on_progress = [&](const PrefillProgress&) { peak = std::max(peak, used_gib()); };
        const double t0 = now();
        if (Status st = engine.value()->prefill(*seq, req, nullptr); !st) {
            std::printf("| %lld | failed: %s | | | |\n", static_cast<long long>(L), st.message().c_str());
            break;
        }
        const double prefill = now() - t0;
        std::vector<float> logits;
        const double t1 = now();
        for (int64_t i = 0; i < decode; ++i) {
            if (Status st = engine.value()->decode(*seq, static_cast<int32_t>(3 + i), &logits); !st) {
                std::printf("decode failed: %s\n", st.message().c_str());
                return 1;
            }
        }
        const double per_token = (now() - t1) / static_cast<double>(decode) * 1000.0;
        std::printf("| %lld | %.2f | %.0f | %.1f | %.2f |\n", static_cast<long long>(L), prefill, static_cast<double>(L) / prefill, per_token, peak);
        std::fflush(stdout);
        // Stop before a length that would not fit in the remaining budget (prefill grows at least linearly).
        if (now() - t_start + prefill * 4.5 > budget) {
            std::printf("(stopping: the next length would exceed the %.0f s budget)\n", budget);
            break;
        }
    }
    return 0;
}
