// quire-bench: prefill and decode speed of the CUDA engine on a model folder (the real 9B
// configuration with random weights in docs/benchmarks.md), with the cuBLAS GEMM time of the
// model's linear layers alone as the floor a prefill can reach. Not a test.
//   quire-bench MODEL_DIR [--random] [--lengths 8192,32768] [--chunk 8192[,16384..]] [--decode 16] [--budget-s 400]
//               [--state-dir DIR] [--gpu-memory GiB [--lengths fit]] [--ablate]
// --gpu-memory: the engine runs under that GPU memory budget; --lengths fit reads the longest context
// the planner says fits it (at most 1M).
// Several chunk sizes run the whole series once each (a fresh sequence per chunk size): the sweep.
// --state-dir: after the longest length, save the prefix state there, load it back (timed) and
// check that the loaded sequence decodes the same next-token logits.
// --random: only MODEL_DIR/config.json is read and the weights are drawn on the GPU (the real 9B
// configuration is tests/data/real_config). QUIRE_CUDA_PROFILE=1 adds GPU time per operation (eager).
// --ablate: each length's decode steps again with one category of operations left out (their outputs
// stale), then with only the GEMVs: where a graph step's time goes. QUIRE_CUDA_GRAPH_TIMING=1 adds
// the host's recording time against the GPU's. --profile-range: two decode steps of each length run
// between cudaProfilerStart and cudaProfilerStop, for `ncu --profile-from-start off` (one kernel at a
// time: what each of a step's kernels costs without its neighbours).
#include <cublas_v2.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "cli_args.h"
#include "cuda/cuda_engine.h"
#include "engine.h"
#include "gpu_memory_plan.h"
#include "gemv_bandwidth.h"
#include "sampler.h"
#include "model.h"
#include "stage1_paths.h"

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

// The card's copy bandwidth (device to device, bytes read + written per second): the floor of any
// pass that streams memory, decode's weight reads among them.
double copy_bandwidth() {
    const size_t bytes = size_t{2} << 30;
    void *a = nullptr, *b = nullptr;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // warm-up
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    std::vector<float> ms;
    for (int rep = 0; rep < 5; ++rep) {
        cudaEventRecord(e0);
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float t = 0;
        cudaEventElapsedTime(&t, e0, e1);
        ms.push_back(t);
    }
    cudaFree(a);
    cudaFree(b);
    std::sort(ms.begin(), ms.end());
    return 2.0 * static_cast<double>(bytes) / (ms[ms.size() / 2] / 1000.0);
}

constexpr int64_t kMaxLength = int64_t{1} << 24;  // 16M tokens: past any context the engine plans for

// Comma-separated token counts from 1 to 16M, each a strict whole number (cli::parseInteger).
std::optional<std::vector<int64_t>> parse_counts(const QString& text) {
    std::vector<int64_t> out;
    for (const QString& part : text.split(',')) {
        const auto v = cli::parseInteger(part);
        if (!v || *v < 1 || *v > kMaxLength) return std::nullopt;
        out.push_back(*v);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    // The parser every `quire` command uses (app/cli_args.h): unknown options, missing values and
    // numbers out of range are refused with the option named, exit code 2.
    cli::CommandLine cl("quire-bench", "Prefill and decode speed of the CUDA engine on a model folder (not a test).");
    cl.addPositional("MODEL_DIR", "the model folder (with --random only its config.json is read)");
    cl.addFlag("random", "draw random weights on the GPU instead of reading the folder's");
    cl.addFlag("ablate", "decode again with each category of operations left out");
    cl.addFlag("profile-range", "two decode steps of each length between cudaProfilerStart and Stop (for ncu)");
    auto counts_check = [](const QString& option, bool fit) {
        return [option, fit](const QString& v) -> std::optional<QString> {
            if ((fit && v == "fit") || parse_counts(v)) return std::nullopt;
            return QString("--%1 wants token counts from 1 to 16M separated by commas%2, not '%3'").arg(option, QString(fit ? ", or 'fit'" : ""), v);
        };
    };
    cl.addChecked("lengths", "L1,L2|fit", "context lengths, or the longest that --gpu-memory fits [default: 8192,32768]", counts_check("lengths", true));
    cl.addChecked("chunk", "N1,N2", "prefill chunk sizes, one series each [default: 8192]", counts_check("chunk", false));
    cl.addInt("decode", "N", "decode steps per length", 1, 1000000, 16);
    cl.addFloat("budget-s", "S", "stop starting longer lengths after this many seconds", 1e-3, 1e9, 400);
    cl.addText("state-dir", "DIR", "save the longest length's state here, load it back and check it");
    cl.addChecked("gpu-memory", "GiB", "the engine's GPU memory budget", [](const QString& v) -> std::optional<QString> {
        const auto b = parse_gpu_memory_gib(v.toStdString());
        if (b) return std::nullopt;
        return QString::fromStdString(b.status().message());
    });
    if (const auto exit = cl.parse(argc, argv, 1)) return *exit;
    const std::string model_dir = cl.positional().front().toStdString();
    const bool random = cl.flag("random");
    const bool ablate = cl.flag("ablate");  // decode again with each category of operations left out
    const bool profile_range = cl.flag("profile-range");
    const int64_t decode = *cl.integer("decode");
    const double budget = *cl.real("budget-s");
    const std::string state_dir = cl.text("state-dir").value_or(QString()).toStdString();
    // --gpu-memory GiB: the engine's budget (gpu_memory_plan.h); --lengths fit: the longest context
    // the budget allows (at most 1M).
    const int64_t gpu_budget = cl.isSet("gpu-memory") ? parse_gpu_memory_gib(cl.text("gpu-memory")->toStdString()).value() : 0;
    const QString lengths_text = cl.text("lengths").value_or("8192,32768");
    const bool fit_length = lengths_text == "fit";
    std::vector<int64_t> lengths = fit_length ? std::vector<int64_t>{} : *parse_counts(lengths_text);
    const std::vector<int64_t> chunks = *parse_counts(cl.text("chunk").value_or("8192"));
    if (fit_length && gpu_budget == 0) return cl.usageError("--lengths fit needs --gpu-memory");
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    const double t_load = now();
    auto model = random ? Model::synthetic(model_dir) : Model::load(model_dir);
    if (!model) {
        std::fprintf(stderr, "%s\n", model.status().message().c_str());
        return 1;
    }
    EngineOptions options;
    options.gpu_memory_budget_bytes = gpu_budget;
    if (gpu_budget > 0) {
        const ModelConfig& c = model.value()->config();
        const WeightFormat format = weight_format_of(c);
        const int64_t chunk = chunks.front();
        const int64_t longest = longest_context_within(c, format, gpu_budget, chunk, int64_t{1} << 20);
        std::printf("GPU memory budget %s, %s: the longest context that fits (at most 1M) is %lld tokens: %s\n", format_gib(gpu_budget).c_str(),
                    format.name().c_str(), static_cast<long long>(longest), describe_plan(plan_gpu_memory(c, format, longest, chunk)).c_str());
        if (fit_length) lengths = {longest};
    }
    auto engine = create_engine(model.value(), Backend::cuda, options);
    if (!engine) {
        std::fprintf(stderr, "%s\n", engine.status().message().c_str());
        return 1;
    }
    cudaDeviceSynchronize();
    std::printf("device: %s; model: %s%s; weights on GPU in %.1f s, %.2f GiB used\n", prop.name, model_dir.c_str(), random ? " (random weights)" : "",
                now() - t_load, used_gib());
    std::printf("stage 1 (prefill): %s kernel\n", kernels::stage1_wgmma_self_check() ? "Hopper wgmma" : "mma.sync");
    auto* cuda_engine = dynamic_cast<cuda::CudaEngine*>(engine.value().get());
    for (int64_t chunk : chunks) {
        const double floor_chunk = gemm_floor(model.value()->config(), chunk);
        std::printf("cuBLAS floor: the linear layers alone take %.1f ms per %lld-token chunk (%.0f tokens/s)\n", floor_chunk * 1000.0,
                    static_cast<long long>(chunk), static_cast<double>(chunk) / floor_chunk);
    }
    const double bandwidth = copy_bandwidth();
    // What a decode step reads: bf16 matrices, or a GPTQ layer's words, zeros and scales.
    double weight_bytes = 0;
    for (const MatrixRef* m : model.value()->weights().matrices())
        weight_bytes += static_cast<double>(m->stored_bytes());
    std::printf("copy bandwidth: %.2f TB/s; reading the %.2f GB of weights once takes %.2f ms (the decode floor)\n", bandwidth / 1e12,
                weight_bytes / 1e9, weight_bytes / bandwidth * 1000.0);
    bench::print_gemv_bandwidth(model.value()->config(), bandwidth);
    // One sequence grows through every length (chunked prefill is causal, so the time to reach L
    // is the time of a prefill of L); decode is measured on a fork at each length.
    std::sort(lengths.begin(), lengths.end());
    std::mt19937 rng(3);
    std::vector<int32_t> tokens(static_cast<size_t>(lengths.back()));
    for (auto& t : tokens) t = static_cast<int32_t>(3 + rng() % 70000);
    std::unique_ptr<Sequence> seq;
    bool over_budget = false;
    for (int64_t chunk : chunks) {
        if (over_budget) break;
        seq.reset();  // the previous chunk size's sequence: its GPU memory is not this one's
        seq = engine.value()->new_sequence();
        double elapsed = 0, peak = 0, last_note = now();
        int64_t done = 0;
        if (chunks.size() > 1) std::printf("\nprefill chunk %lld tokens:\n", static_cast<long long>(chunk));
        std::printf("| context | prefill s | prefill tokens/s | decode ms/token | follow-up first token ms | GPU memory used GiB |\n|---|---|---|---|---|---|\n");
        for (int64_t L : lengths) {
            const double t0 = now();
            PrefillRequest req;
            req.tokens = std::span<const int32_t>(tokens.data() + done, static_cast<size_t>(L - done));
            req.chunk = chunk;
            req.on_progress = [&](const PrefillProgress& pr) {
                peak = std::max(peak, used_gib());
                if (now() - last_note > 30) {
                    std::fprintf(stderr, "  ... %lld tokens, %.0f s\n", static_cast<long long>(done + pr.done), elapsed + now() - t0);
                    last_note = now();
                }
            };
            if (Status st = engine.value()->prefill(*seq, req, nullptr); !st) {
                std::printf("| %lld | failed: %s | | | |\n", static_cast<long long>(L), st.message().c_str());
                break;
            }
            elapsed += now() - t0;
            done = L;
            peak = std::max(peak, used_gib());
            // GPU time per operation: the prefill segment, then the decode steps (per token).
            std::string prefill_profile, decode_profile;
            std::optional<cuda::DecodeGraph::Timing> graph_timing;
            auto take_profile = [&](double divide) {
                std::string out;
                if (!cuda_engine) return out;
                double total = 0;
                for (const auto& [name, sec] : cuda_engine->profile()) total += sec;
                if (total > 0) {
                    char buf[96];
                    for (const auto& [name, sec] : cuda_engine->profile()) {
                        std::snprintf(buf, sizeof buf, " %s %.3f;", name.c_str(), sec / divide * (divide > 1 ? 1000.0 : 1.0));
                        out += buf;
                    }
                }
                cuda_engine->reset_profile();
                return out;
            };
            prefill_profile = take_profile(1);
            double per_token = 0;
            {
                auto fork = seq->fork();
                if (!fork) {
                    std::printf("| %lld | %.2f | %.0f | fork failed | %.2f |\n", static_cast<long long>(L), elapsed, static_cast<double>(L) / elapsed, peak);
                    continue;
                }
                std::vector<float> logits;
                // Warm-up: the first step records the whole step as a CUDA graph, the second segment by segment.
                if (Status st = engine.value()->decode(*fork, 3, &logits); !st || !engine.value()->decode(*fork, 3, nullptr)) {
                    std::printf("decode failed: %s\n", st.message().c_str());
                    return 1;
                }
                if (profile_range) {
                    Sampler g({});
                    (void)cudaProfilerStart();
                    for (int i = 0; i < 2; ++i) (void)engine.value()->decode_and_sample(*fork, 5, g);
                    (void)cudaProfilerStop();
                }
                take_profile(1);
                if (cuda_engine) cuda_engine->reset_decode_graph_timing();
                // Decode as generation runs it: the next token drawn (greedy) where the logits are, so
                // on the GPU one token id comes back per step.
                Sampler greedy({});
                const double t1 = now();
                for (int64_t i = 0; i < decode; ++i)
                    if (auto r = engine.value()->decode_and_sample(*fork, static_cast<int32_t>(4 + i), greedy); !r) {
                        std::printf("decode failed: %s\n", r.status().message().c_str());
                        return 1;
                    }
                per_token = (now() - t1) / static_cast<double>(decode) * 1000.0;
                decode_profile = take_profile(static_cast<double>(decode));
                // The timed steps' graph timing, before --ablate adds its shorter steps to the totals.
                if (const auto* t = cuda_engine ? cuda_engine->decode_graph_timing() : nullptr) graph_timing = *t;
                if (ablate && cuda_engine) {
                    // Where the step's time goes, as CUDA graphs run it: the same steps with one
                    // category of operations left out (their outputs stale), then with only the GEMVs.
                    uint32_t all = 0;
                    for (int op = 0; op < static_cast<int>(cuda::Op::count); ++op) all |= 1u << op;
                    const uint32_t gemm = 1u << static_cast<int>(cuda::Op::gemm);
                    std::vector<std::pair<std::string, uint32_t>> masks{{"nothing", 0u}};
                    for (int op = 0; op < static_cast<int>(cuda::Op::count); ++op)
                        masks.emplace_back(cuda::op_name(static_cast<cuda::Op>(op)), 1u << op);
                    masks.emplace_back("everything but the GEMVs", all & ~gemm);
                    std::printf("    decode ablation (ms per token, %lld steps each, left out: time, saving):", static_cast<long long>(decode));
                    double base = 0;
                    for (const auto& [name, mask] : masks) {
                        cuda_engine->set_skipped_ops(mask);
                        Sampler g({});
                        bool ok = true;
                        for (int w = 0; w < 3 && ok; ++w) ok = static_cast<bool>(engine.value()->decode_and_sample(*fork, 5, g));
                        const double ta = now();
                        for (int64_t i = 0; i < decode && ok; ++i) ok = static_cast<bool>(engine.value()->decode_and_sample(*fork, 5, g));
                        const double ms = (now() - ta) / static_cast<double>(decode) * 1000.0;
                        if (mask == 0) base = ms;
                        if (ok) std::printf(" %s %.3f (%.3f);", name.c_str(), ms, base - ms);
                        else std::printf(" %s failed;", name.c_str());
                    }
                    std::printf("\n");
                    cuda_engine->set_skipped_ops(0);
                }
            }
            // A follow-up question on the prefix already in GPU memory: fork, read 50 question tokens,
            // sample the first answer token.
            double followup_ms = 0;
            {
                const double t2 = now();
                auto fork = seq->fork();
                std::vector<int32_t> question(50);
                for (size_t i = 0; i < question.size(); ++i) question[i] = static_cast<int32_t>(100 + i);
                PrefillRequest q;
                q.tokens = question;
                q.logits_positions = {L + 49};
                std::vector<std::vector<float>> rows;
                std::vector<float> logits;
                if (!fork || !engine.value()->prefill(*fork, q, &rows) || !engine.value()->decode(*fork, 7, &logits)) {
                    std::printf("follow-up failed\n");
                    return 1;
                }
                followup_ms = (now() - t2) * 1000.0;
                take_profile(1);
            }
            std::printf("| %lld | %.2f | %.0f | %.2f | %.1f | %.2f |\n", static_cast<long long>(L), elapsed, static_cast<double>(L) / elapsed, per_token,
                        followup_ms, peak);
            if (!prefill_profile.empty()) std::printf("    prefill GPU seconds since the previous row:%s\n", prefill_profile.c_str());
            if (!decode_profile.empty()) std::printf("    decode GPU milliseconds per token:%s\n", decode_profile.c_str());
            if (cuda_engine)
                std::printf("    decode step: %s, %lld graph nodes (kernels and copies)\n", cuda_engine->decode_graphs() ? "CUDA graphs" : "eager launches",
                            static_cast<long long>(cuda_engine->last_step_nodes()));
            if (const auto* t = graph_timing ? &*graph_timing : nullptr; t && t->steps > 0) {
                const double k = 1000.0 / static_cast<double>(t->steps);
                std::printf("    decode graph timing per token (%lld steps): host records %.3f ms (first segment launched after %.3f ms); "
                            "GPU busy in segments %.3f ms, idle between segments %.3f ms; forward() on the host %.3f ms, of it %.3f ms "
                            "before recording\n",
                            static_cast<long long>(t->steps), t->host_s * k, t->first_launch_s * k, t->busy_s * k, t->idle_s * k,
                            t->wall_s * k, t->before_s * k);
            }
            std::fflush(stdout);
            if (now() - t_load > budget) {
                std::printf("(stopping: past the %.0f s budget)\n", budget);
                over_budget = true;
                break;
            }
        }
    }  // chunk sizes
    if (!state_dir.empty() && seq->length() > 0) {
        // The product's restart path: the prefix state to disk and back.
        const std::string path = state_dir + "/bench.qstate";
        const double t0 = now();
        if (Status st = engine.value()->save_state(*seq, path); !st) {
            std::printf("save failed: %s\n", st.message().c_str());
            return 1;
        }
        const double saved = now() - t0;
        std::FILE* f = std::fopen(path.c_str(), "rb");
        double bytes = 0;
        if (f) {
            std::fseek(f, 0, SEEK_END);
            bytes = static_cast<double>(std::ftell(f));
            std::fclose(f);
        }
        const double t1 = now();
        auto loaded = engine.value()->load_state(path, &seq->tokens());
        if (!loaded) {
            std::printf("load failed: %s\n", loaded.status().message().c_str());
            return 1;
        }
        const double restored = now() - t1;
        std::vector<float> a, b;
        auto fork = seq->fork();
        if (!fork || !engine.value()->decode(*fork, 5, &a) || !engine.value()->decode(*loaded.value(), 5, &b)) {
            std::printf("decode after the round trip failed\n");
            return 1;
        }
        float diff = 0;
        for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
        std::printf("state of %lld tokens: %.2f GB; saved in %.2f s (%.2f GB/s), loaded in %.2f s (%.2f GB/s); next-token logits max |diff| %g\n",
                    static_cast<long long>(seq->length()), bytes / 1e9, saved, bytes / 1e9 / saved, restored, bytes / 1e9 / restored, diff);
    }
    return 0;
}
