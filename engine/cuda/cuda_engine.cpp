#include "cuda/cuda_engine.h"

#include "cuda/cuda_sequence.h"

#include <cmath>
#include <cstring>
#include <tuple>

#include "attention_ops.h"
#include "cpu/lightning_attention.h"
#include "gemv.h"
#include "random_fill.h"
#include "gptq_dequant.h"
#include "gptq_gemv.h"
#include "gptq_gemv_mma.h"
#include "quant/fp16.h"
#include "stage1_paths.h"
#include "cuda/cuda_sala_ops.h"
#include "cuda/cuda_state_rows.h"
#include "gpu_memory_plan.h"
#include "bf16.h"
#include "prefill_loop.h"
#include "sampler.h"
#include "sala_forward.h"

namespace quire::cuda {

namespace {

double gib(int64_t b) { return static_cast<double>(b) / double(1LL << 30); }

CudaSequence& as_cuda(Sequence& s) { return static_cast<CudaSequence&>(s); }
const CudaSequence& as_cuda(const Sequence& s) { return static_cast<const CudaSequence&>(s); }

template <typename T>
Status upload_vec(DeviceArray<T>& d, const std::vector<T>& h) {
    if (d.allocate(static_cast<int64_t>(h.size())) != cudaSuccess) return Status(ErrorCode::out_of_memory, "cannot allocate on the GPU");
    if (!h.empty() && cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess)
        return Status(ErrorCode::device_error, "cannot copy to the GPU");
    return Status::ok();
}

}  // namespace

Status CudaEngine::check(cudaError_t e, const char* what) const {
    if (e == cudaSuccess) return Status::ok();
    cudaGetLastError();  // clear non-sticky errors so the process stays usable
    const ErrorCode code = e == cudaErrorMemoryAllocation ? ErrorCode::out_of_memory : ErrorCode::device_error;
    return Status(code, std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

Result<std::unique_ptr<Engine>> CudaEngine::create(std::shared_ptr<const Model> model, const EngineOptions& options) {
    if (options.precision != Precision::bf16)
        return Status(ErrorCode::unsupported, "the CUDA backend computes in bf16 only; use --backend cpu for --precision fp32");
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        cudaGetLastError();
        return Status(ErrorCode::device_error, "no usable CUDA device");
    }
    if (options.gpu < 0 || options.gpu >= count)
        return Status(ErrorCode::invalid_argument, "GPU " + std::to_string(options.gpu) + " does not exist: this machine has " +
                                                       std::to_string(count) + " CUDA device(s), numbered from 0");
    if (cudaSetDevice(options.gpu) != cudaSuccess) {
        cudaGetLastError();
        return Status(ErrorCode::device_error, "cannot use GPU " + std::to_string(options.gpu));
    }
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return Status(ErrorCode::device_error, "cannot query GPU memory");
    int64_t weights = 0;  // bf16 bytes, or a GPTQ layer's packed words, scales and zeros
    for (const MatrixRef* m : model->weights().matrices()) weights += m->stored_bytes();
    const int64_t need = weights + (256LL << 20);
    if (need > static_cast<int64_t>(free_b)) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "the model needs %.1f GiB, the GPU has %.1f GiB free", gib(need), gib(static_cast<int64_t>(free_b)));
        return Status(ErrorCode::out_of_memory, msg);
    }
    if (const int64_t budget = options.gpu_memory_budget_bytes; budget > 0 && need + kCudaContextBytes > budget) {
        char msg[240];
        std::snprintf(msg, sizeof msg,
                      "the model's weights need %.2f GiB on the GPU (and the CUDA context about %.2f GiB), more than the GPU memory budget "
                      "of %.2f GiB (--gpu-memory)",
                      gib(weights), gib(kCudaContextBytes), gib(budget));
        return Status(ErrorCode::out_of_memory, msg);
    }
    const SparseGeometry g = SparseGeometry::from(model->config());
    if (model->config().sparse_layer_count() > 0 &&
        (g.block != 64 || g.c1_kernel != 32 || g.c1_stride != 16 || (g.head_dim != 64 && g.head_dim != 128) || 16 % g.group != 0))
        return Status(ErrorCode::unsupported, "the CUDA kernels run InfLLM-v2 with 64-token blocks, C1 windows of 32 keys every 16, head "
                                              "size 64 or 128 and GQA groups dividing 16; this model has blocks of " + std::to_string(g.block) +
                                              ", windows of " + std::to_string(g.c1_kernel) + " every " + std::to_string(g.c1_stride) +
                                              ", head size " + std::to_string(g.head_dim) + ", groups of " + std::to_string(g.group) +
                                              " (use --backend cpu)");
    std::unique_ptr<CudaEngine> e(new CudaEngine());
    e->model_ = std::move(model);
    e->options_ = options;
    e->geometry_ = g;
    if (cudaStreamCreate(&e->stream_) != cudaSuccess) return Status(ErrorCode::device_error, "cannot create a CUDA stream");
    e->profiler_.set_stream(e->stream_);
    if (cublasCreate(&e->blas_) != CUBLAS_STATUS_SUCCESS) return Status(ErrorCode::device_error, "cuBLAS did not start");
    cublasSetStream(e->blas_, e->stream_);
    // fp32 accumulation all the way: no reduced-precision split-K reductions.
    cublasSetMathMode(e->blas_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    QUIRE_TRY(e->upload());
    e->model_->release_resident_weights();  // the GPU has them now (cudaMemcpy from the mapping is synchronous)
    kernels::stage1_wgmma_self_check();  // once, here rather than inside the first prefill's timing (false: mma.sync path)
    // cuBLAS gets its workspace up front: a GEMM recorded into a CUDA graph must not allocate.
    constexpr int64_t kBlasWorkspace = int64_t{32} << 20;
    QUIRE_TRY(e->check(e->blas_workspace_.allocate(kBlasWorkspace), "cuBLAS workspace"));
    if (cublasSetWorkspace(e->blas_, e->blas_workspace_.get(), static_cast<size_t>(kBlasWorkspace)) != CUBLAS_STATUS_SUCCESS)
        return Status(ErrorCode::device_error, "cuBLAS did not take its workspace");
    QUIRE_TRY(e->check(cudaMallocHost(&e->step_host_, sizeof(StepHost)), "pinned step inputs"));
    QUIRE_TRY(e->check(e->step_in_.allocate(1), "step inputs"));
    QUIRE_TRY(e->check(e->sampled_.allocate(1), "sampled token"));
    QUIRE_TRY(e->check(e->sample_scratch_.allocate(kernels::kSampleScratchWords), "sampling scratch"));
    if (e->profiler_.enabled()) e->graph_.set_enabled(false);  // per-operation events need eager launches
    if (const char* fuse = std::getenv("QUIRE_CUDA_FUSE")) e->fuse_gates_ = std::strcmp(fuse, "0") != 0;
    // QUIRE_CUDA_SIDE_STREAM=1: a 4-bit checkpoint's bf16 layers on a second stream beside the 4-bit
    // GEMV. Off by default: with programmatic launch everywhere, the fork and join cost more than
    // the overlap gives (H200, INT4 at 1M: 3.87 ms a token with it, 3.73 without; docs/benchmarks.md).
    // QUIRE_CUDA_JOIN_BF16=0: that bf16 layer in its own GEMV after the 4-bit one (to compare).
    const char* join = std::getenv("QUIRE_CUDA_JOIN_BF16");
    e->join_bf16_ = !(join && std::strcmp(join, "0") == 0);
    const char* side = std::getenv("QUIRE_CUDA_SIDE_STREAM");
    e->side_on_ = side && std::strcmp(side, "1") == 0;
    if (e->model_->weights().quantized()) {
        QUIRE_TRY(e->check(cudaStreamCreateWithFlags(&e->side_stream_, cudaStreamNonBlocking), "side stream"));
        QUIRE_TRY(e->check(cudaEventCreateWithFlags(&e->fork_, cudaEventDisableTiming), "stream fork event"));
        QUIRE_TRY(e->check(cudaEventCreateWithFlags(&e->join_, cudaEventDisableTiming), "stream join event"));
    }
    return std::unique_ptr<Engine>(std::move(e));
}

CudaEngine::~CudaEngine() {
    if (step_host_) cudaFreeHost(step_host_);
    if (blas_) cublasDestroy(blas_);
    if (fork_) cudaEventDestroy(fork_);
    if (join_) cudaEventDestroy(join_);
    if (side_stream_) cudaStreamDestroy(side_stream_);
    if (stream_) cudaStreamDestroy(stream_);
}

Status CudaEngine::upload() {
    const ModelConfig& c = model_->config();
    const ModelWeights& w = model_->weights();
    // Matrices that read the same input share one allocation, one after another, so a decode step
    // reads them in one pass (gemm_group): Lightning q, k, v, z; sparse q, o_gate, k, v; the MLP's
    // gate and up. Absent matrices (rows 0) take no room.
    // A GPTQ layer keeps its own allocation (its words, zeros and scales); the bf16 ones of a group
    // still lie together.
    auto pack = [&](std::initializer_list<std::pair<Matrix*, const MatrixRef*>> group) -> Status {
        int64_t elements = 0;
        for (auto [m, r] : group) {
            m->rows = r->rows;
            m->cols = r->cols;
            if (r->quantized()) QUIRE_TRY(allocate_gptq(*m, r->gptq));
            else elements += r->rows * r->cols;
        }
        if (elements == 0) return Status::ok();
        DeviceArray<uint16_t> storage;
        QUIRE_TRY(check(storage.allocate(elements), "weights"));
        int64_t at = 0;
        for (auto [m, r] : group) {
            if (r->rows == 0 || r->quantized()) continue;
            m->data = storage.get() + at;
            at += r->rows * r->cols;
        }
        weights_.push_back(std::move(storage));
        return Status::ok();
    };
    QUIRE_TRY(pack({{&embed_, &w.embed}}));
    if (c.tie_word_embeddings) {
        lm_head_ = embed_;  // shares the embedding's device copy
    } else {
        QUIRE_TRY(pack({{&lm_head_, &w.lm_head}}));
    }
    QUIRE_TRY(upload_vec(final_norm_, w.final_norm));
    QUIRE_TRY(upload_vec(slopes_, cpu::alibi_slopes(c.lightning_nh)));
    int64_t ns = 0, nl = 0;
    for (const LayerWeights& lw : w.layers) {
        Layer L;
        L.sparse = lw.kind == MixerType::sparse;
        slot_.push_back(L.sparse ? ns++ : nl++);
        QUIRE_TRY(upload_vec(L.input_norm, lw.input_norm));
        QUIRE_TRY(upload_vec(L.post_norm, lw.post_norm));
        QUIRE_TRY(upload_vec(L.q_norm, lw.q_norm));
        QUIRE_TRY(upload_vec(L.k_norm, lw.k_norm));
        QUIRE_TRY(upload_vec(L.o_norm, lw.o_norm));
        if (L.sparse) {  // q and o_gate, then k and v: one token's q, o_gate, k and v in one pass
            QUIRE_TRY(pack({{&L.q, &lw.q}, {&L.gate, &lw.gate}, {&L.k, &lw.k}, {&L.v, &lw.v}}));
        } else {
            QUIRE_TRY(pack({{&L.q, &lw.q}, {&L.k, &lw.k}, {&L.v, &lw.v}, {&L.gate, &lw.gate}}));
        }
        QUIRE_TRY(pack({{&L.o, &lw.o}}));
        QUIRE_TRY(pack({{&L.mlp_gate, &lw.mlp_gate}, {&L.mlp_up, &lw.mlp_up}}));
        QUIRE_TRY(pack({{&L.mlp_down, &lw.mlp_down}}));
        layers_.push_back(std::move(L));
    }
    // The bytes, in the checkpoint's order (a synthetic model's seeds follow it too).
    uint64_t seed = 1;
    auto fill = [&](const Matrix& m, const MatrixRef& r) -> Status {
        if (r.rows == 0) return Status::ok();
        if (r.quantized()) return fill_gptq(m, r.gptq, seed++);
        auto* dst = const_cast<uint16_t*>(m.data);  // storage owned by weights_
        if (!r.data) {
            if (!model_->is_synthetic()) return Status(ErrorCode::invalid_argument, "a weight matrix has no data");
            // N(0, 1/fan_in)-like: activations keep unit scale through the random layers.
            const float stddev = 1.0f / std::sqrt(static_cast<float>(r.cols));
            return check(kernels::launch_fill_random_bf16(dst, r.rows * r.cols, seed++, stddev, nullptr), "random weights");
        }
        return check(cudaMemcpy(dst, r.data, static_cast<size_t>(r.rows * r.cols) * 2, cudaMemcpyHostToDevice), "weights");
    };
    QUIRE_TRY(fill(embed_, w.embed));
    if (!c.tie_word_embeddings) QUIRE_TRY(fill(lm_head_, w.lm_head));
    for (size_t i = 0; i < w.layers.size(); ++i) {
        const LayerWeights& lw = w.layers[i];
        const Layer& L = layers_[i];
        for (auto [m, r] : {std::pair{&L.q, &lw.q}, std::pair{&L.k, &lw.k}, std::pair{&L.v, &lw.v}, std::pair{&L.o, &lw.o},
                            std::pair{&L.gate, &lw.gate}, std::pair{&L.mlp_gate, &lw.mlp_gate}, std::pair{&L.mlp_up, &lw.mlp_up},
                            std::pair{&L.mlp_down, &lw.mlp_down}})
            QUIRE_TRY(fill(*m, *r));
    }
    return Status::ok();
}

static_assert(kernels::gptq_gemv_partial_floats(1) == kGptqGemvPartialFloatsPerColumn, "the planner counts the GEMV scratch as the kernel sizes it");
static_assert(kernels::kDecodeAttentionSplits == kDecodeAttentionSplitsPlanned, "the planner counts the decode attention's scratch as the kernel sizes it");

Status CudaEngine::allocate_gptq(Matrix& m, const GptqTensors& t) {
    // One allocation: qweight | qzeros | scales | g_idx, each 256-byte aligned (the GEMV's 16-byte loads).
    auto round = [](int64_t b) { return (b + 255) / 256 * 256; };
    const int64_t qw = round(t.qweight_bytes()), qz = round(t.qzeros_bytes()), sc = round(t.scales_bytes()), gi = round(t.g_idx_bytes());
    DeviceArray<uint16_t> storage;
    QUIRE_TRY(check(storage.allocate((qw + qz + sc + gi) / 2), "GPTQ weights"));
    auto* base = reinterpret_cast<uint8_t*>(storage.get());
    m.gptq.qweight = reinterpret_cast<const int32_t*>(base);
    m.gptq.qzeros = reinterpret_cast<const int32_t*>(base + qw);
    m.gptq.scales = reinterpret_cast<const __half*>(base + qw + qz);
    m.gptq.g_idx = t.g_idx ? reinterpret_cast<const int32_t*>(base + qw + qz + sc) : nullptr;
    m.gptq.in = t.in;
    m.gptq.out = t.out;
    m.gptq.bits = t.bits;
    m.gptq.group_size = t.group_size;
    m.gptq.zero_offset = t.zero_offset;
    // Tiled (gptq_view.h): a decode GEMV's columns then lie in one contiguous stretch.
    m.gptq.tiled = t.out % kernels::kGptqTileCols == 0;
    weights_.push_back(std::move(storage));
    // Prefill multiplies a GPTQ layer through a bf16 copy (gemm): room for the largest.
    if (t.in * t.out > dequant_.size()) QUIRE_TRY(check(dequant_.allocate(t.in * t.out), "GPTQ dequantization scratch"));
    if (!gptq_tickets_.get()) {
        const int64_t cols = gptq_gemv_scratch_columns(model_->config());
        QUIRE_TRY(check(gptq_partials_.allocate(kernels::gptq_gemv_partial_floats(cols)), "GPTQ GEMV scratch"));
        QUIRE_TRY(check(gptq_tickets_.allocate(kernels::gptq_gemv_ticket_count(cols)), "GPTQ GEMV scratch"));
        QUIRE_TRY(check(cudaMemset(gptq_tickets_.get(), 0, static_cast<size_t>(gptq_tickets_.size()) * 4), "GPTQ GEMV scratch"));
        gptq_scratch_ = {gptq_partials_.get(), gptq_partials_.size(), gptq_tickets_.get(), gptq_tickets_.size()};
    }
    return Status::ok();
}

Status CudaEngine::fill_gptq(const Matrix& m, const GptqTensors& t, uint64_t seed) {
    const kernels::GptqView& v = m.gptq;
    auto* qweight = const_cast<int32_t*>(v.qweight);  // storage owned by weights_
    auto* qzeros = const_cast<int32_t*>(v.qzeros);
    auto* scales = const_cast<__half*>(v.scales);
    if (!t.synthetic) {
        if (v.tiled) {  // through the dequantization scratch (larger than any layer's packed words), then tiled
            auto* staged = reinterpret_cast<int32_t*>(dequant_.get());
            QUIRE_TRY(check(cudaMemcpy(staged, t.qweight, static_cast<size_t>(t.qweight_bytes()), cudaMemcpyHostToDevice), "GPTQ weights"));
            QUIRE_TRY(check(kernels::launch_gptq_tile_qweight(staged, qweight, t.in / (32 / t.bits), t.out, nullptr), "GPTQ weight tiling"));
            QUIRE_TRY(check(cudaDeviceSynchronize(), "GPTQ weight tiling"));
        } else {
            QUIRE_TRY(check(cudaMemcpy(qweight, t.qweight, static_cast<size_t>(t.qweight_bytes()), cudaMemcpyHostToDevice), "GPTQ weights"));
        }
        QUIRE_TRY(check(cudaMemcpy(qzeros, t.qzeros, static_cast<size_t>(t.qzeros_bytes()), cudaMemcpyHostToDevice), "GPTQ zeros"));
        QUIRE_TRY(check(cudaMemcpy(scales, t.scales, static_cast<size_t>(t.scales_bytes()), cudaMemcpyHostToDevice), "GPTQ scales"));
        if (t.g_idx)
            QUIRE_TRY(check(cudaMemcpy(const_cast<int32_t*>(v.g_idx), t.g_idx, static_cast<size_t>(t.g_idx_bytes()), cudaMemcpyHostToDevice),
                            "GPTQ g_idx"));
        return Status::ok();
    }
    // A synthetic model: uniform words (tiled or not, the same distribution), the symmetric zero
    // point, and one scale chosen so the weights have the bf16 synthetic model's spread (variance
    // 1/in): a uniform b-bit value minus its zero has a standard deviation of sqrt((4^b - 1) / 12).
    QUIRE_TRY(check(kernels::launch_fill_random_bits(reinterpret_cast<uint32_t*>(qweight), t.qweight_bytes() / 4, seed, nullptr),
                    "random GPTQ weights"));
    const int zero = (1 << (t.bits - 1)) - t.zero_offset;  // stored zero point of a symmetric layer
    const int zero_byte = t.bits == 4 ? (zero << 4 | zero) : zero;
    QUIRE_TRY(check(cudaMemset(qzeros, zero_byte, static_cast<size_t>(t.qzeros_bytes())), "GPTQ zeros"));
    const double spread = std::sqrt((std::pow(4.0, t.bits) - 1.0) / 12.0);
    const double want = 1.0 / (std::sqrt(static_cast<double>(t.in)) * spread);
    int best = 0;  // cudaMemset writes bytes: the fp16 value whose two bytes are equal nearest to `want`
    for (int b = 1; b < 0x7C; ++b)
        if (std::fabs(fp16_to_float(static_cast<uint16_t>(b << 8 | b)) - want) < std::fabs(fp16_to_float(static_cast<uint16_t>(best << 8 | best)) - want))
            best = b;
    return check(cudaMemset(scales, best, static_cast<size_t>(t.scales_bytes())), "GPTQ scales");
}

int64_t CudaEngine::state_bytes(int64_t tokens) const {
    const ModelConfig& c = model_->config();
    const int64_t width = c.num_key_value_heads * c.head_dim * 2;
    const int64_t per_layer = 2 * tokens * width + (geometry_.c1_entries(tokens) + geometry_.c2_entries(tokens)) * width;
    return c.sparse_layer_count() * per_layer + c.lightning_layer_count() * c.lightning_nh * c.lightning_head_dim * c.lightning_head_dim * 4;
}

int64_t CudaEngine::workspace_bytes(int64_t chunk, int64_t context) const {
    const ModelConfig& c = model_->config();
    const int64_t wide = std::max({c.intermediate_size, c.num_attention_heads * c.head_dim, c.lightning_nh * c.lightning_head_dim});
    const int64_t blocks = (context + 63) / 64;
    const int64_t selection = chunk * c.num_key_value_heads * (blocks * 4 + c.sparse.effective_topk() * 4);
    return chunk * (3 * c.hidden_size + 5 * wide) * 2 + chunk * 4 + selection;
}

int64_t CudaEngine::Workspace::bytes() const {
    int64_t n = 0;
    for (const DeviceArray<uint16_t>* b : {&x, &h, &a, &b0, &b1, &b2, &b3, &b4}) n += b->size() * 2;
    return n + logits.size() * 2 + ids.size() * 4 + selected.size() * 4 + block_scores.size() * 4 + stage1_scratch.size() * 4 + attention_scratch.size() * 4;
}

int64_t CudaEngine::workspace_growth(int64_t tokens, int64_t context) const {
    if (tokens <= ws_.tokens && (context + 63) / 64 <= ws_.blocks) return 0;
    return std::max<int64_t>(0, workspace_bytes(std::max(tokens, ws_.tokens), context + 1024 * 64) - ws_.bytes());
}

Status CudaEngine::ensure_workspace(int64_t tokens, int64_t context) {
    const ModelConfig& c = model_->config();
    const int64_t blocks = (context + 63) / 64;
    if (tokens <= ws_.tokens && blocks <= ws_.blocks) return Status::ok();
    // Grow in steps (chunks keep their size; the context grows by a chunk at a time).
    const int64_t t = std::max(tokens, ws_.tokens), nb = std::max(blocks, ws_.blocks + 1024);
    ws_ = Workspace{};
    const int64_t H = c.hidden_size, kv = c.num_key_value_heads;
    const int64_t wide = std::max({c.intermediate_size, c.num_attention_heads * c.head_dim, c.lightning_nh * c.lightning_head_dim});
    for (auto* buf : {&ws_.x, &ws_.h, &ws_.a}) QUIRE_TRY(check(buf->allocate(t * H), "activations"));
    for (auto* buf : {&ws_.b0, &ws_.b1, &ws_.b2, &ws_.b3, &ws_.b4}) QUIRE_TRY(check(buf->allocate(t * wide), "activations"));
    QUIRE_TRY(check(ws_.ids.allocate(t), "token ids"));
    if (c.sparse_layer_count() > 0) {
        QUIRE_TRY(check(ws_.block_scores.allocate(t * kv * nb), "block scores"));
        QUIRE_TRY(check(ws_.selected.allocate(t * kv * c.sparse.effective_topk()), "block selections"));
    }
    ws_.tokens = t;
    ws_.blocks = nb;
    return Status::ok();
}

Status CudaEngine::within_budget(int64_t more, int64_t context) const {
    const int64_t budget = options_.gpu_memory_budget_bytes;
    if (budget <= 0 || more <= 0) return Status::ok();
    // What this process holds on the GPU (weights, every live sequence's state, the workspace) and the
    // CUDA context beside it.
    const int64_t used = device_bytes_in_use().load() + kCudaContextBytes;
    if (used + more <= budget) return Status::ok();
    const int64_t longest = longest_context_within(model_->config(), weight_format_of(model_->config()), budget, std::max<int64_t>(ws_.tokens, 1));
    char msg[400];
    std::snprintf(msg, sizeof msg,
                  "a context of %lld tokens needs %.2f GiB more on the GPU; with the %.2f GiB in use (weights, states, workspace, CUDA "
                  "context) that is %.2f GiB, over the GPU memory budget of %.2f GiB (--gpu-memory). The longest context that fits "
                  "the budget is about %lld tokens",
                  static_cast<long long>(context), gib(more), gib(used), gib(used + more), gib(budget), static_cast<long long>(longest));
    return Status(ErrorCode::out_of_memory, msg);
}

Status CudaEngine::gemm(const uint16_t* x, int64_t tokens, const Matrix& w, uint16_t* y) {
    if (w.quantized()) {
        // Decode reads the packed words; prefill multiplies a bf16 copy made right before (docs/quantization.md).
        if (tokens <= kernels::kGptqGemvMaxTokens)
            return check(kernels::launch_gptq_gemv(w.gptq, x, tokens, y, stream_, kernels::GptqGemvLoop::automatic, &gptq_scratch_), "GPTQ GEMV");
        QUIRE_TRY(check(kernels::launch_gptq_dequant(w.gptq, dequant_.get(), stream_), "GPTQ dequantization"));
        Matrix bf16;
        bf16.data = dequant_.get();
        bf16.rows = w.rows;
        bf16.cols = w.cols;
        return gemm(x, tokens, bf16, y);
    }
    // A few tokens (decode): a weight-streaming GEMV beats cuBLAS's small-n GEMM.
    if (tokens <= kernels::kGemvMaxTokens && w.cols % 8 == 0)
        return check(kernels::launch_gemv_bf16(w.data, w.rows, w.cols, x, tokens, y, stream_), "GEMV");
    // Row-major y[tokens, rows] = x[tokens, cols] . W[rows, cols]^T, as column-major y^T = W . x^T.
    const float one = 1.0f, zero = 0.0f;
    const cublasStatus_t s = cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows), static_cast<int>(tokens),
                                          static_cast<int>(w.cols), &one, w.data, CUDA_R_16BF, static_cast<int>(w.cols), x,
                                          CUDA_R_16BF, static_cast<int>(w.cols), &zero, y, CUDA_R_16BF, static_cast<int>(w.rows),
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) return Status(ErrorCode::device_error, "cuBLAS GEMM failed (status " + std::to_string(s) + ")");
    return Status::ok();
}

Status CudaEngine::gemm_group(const uint16_t* x, int64_t tokens, const std::vector<GemmOut>& outs) {
    if (std::any_of(outs.begin(), outs.end(), [](const GemmOut& o) { return o.w->quantized(); })) {
        // The GPTQ layers of the group in one packed-word pass (decode), the bf16 ones beside them.
        std::vector<GemmOut> plain;
        kernels::GptqGemvLayer q[kernels::kGptqGemvMaxLayers];
        int nq = 0;
        for (const GemmOut& o : outs) {
            const bool joins = o.w->quantized() && tokens <= kernels::kGptqGemvMaxTokens && nq < kernels::kGptqGemvMaxLayers &&
                               (nq == 0 || (o.w->cols == q[0].weights.in && o.w->gptq.bits == q[0].weights.bits));
            if (joins) q[nq++] = {o.w->gptq, o.y};
            else if (o.w->quantized()) QUIRE_TRY(gemm(x, tokens, *o.w, o.y));
            else plain.push_back(o);
        }
        // One bf16 layer (o_gate / z_proj) joins the 4-bit launch: its CTAs stream their weights
        // beside the tiles (gptq_gemv_mma.h), one ramp-up and one tail for both.
        if (nq > 0 && join_bf16_ && plain.size() == 1 && plain[0].w->data) {
            const kernels::GptqGemvBf16 b{plain[0].w->data, plain[0].w->rows, plain[0].w->cols, plain[0].y};
            if (kernels::gptq_gemv_mma_bf16_applies(q, nq, b, tokens)) {
                ++joined_bf16_launches_;
                return check(kernels::launch_gptq_gemv_mma_with_bf16(q, nq, b, x, tokens, stream_, &gptq_scratch_), "GPTQ GEMV with a bf16 layer");
            }
        }
        // Or both kinds at the same time on two streams (QUIRE_CUDA_SIDE_STREAM=1).
        const bool fork = nq > 0 && side_on_ && side_stream_ && one_gemv_pass(plain, tokens);
        if (fork) {
            QUIRE_TRY(check(cudaEventRecord(fork_, stream_), "stream fork"));
            QUIRE_TRY(check(cudaStreamWaitEvent(side_stream_, fork_, 0), "stream fork"));
            QUIRE_TRY(gemv_pass(x, tokens, plain, side_stream_));
        }
        if (nq > 0)
            QUIRE_TRY(check(kernels::launch_gptq_gemv_multi(q, nq, x, tokens, stream_, kernels::GptqGemvLoop::automatic, &gptq_scratch_),
                            "GPTQ GEMV"));
        if (fork) {
            QUIRE_TRY(check(cudaEventRecord(join_, side_stream_), "stream join"));
            return check(cudaStreamWaitEvent(stream_, join_, 0), "stream join");
        }
        return plain.empty() ? Status::ok() : gemm_group(x, tokens, plain);
    }
    if (!one_gemv_pass(outs, tokens)) {
        for (const GemmOut& o : outs) QUIRE_TRY(gemm(x, tokens, *o.w, o.y));
        return Status::ok();
    }
    return gemv_pass(x, tokens, outs, stream_);
}

bool CudaEngine::one_gemv_pass(const std::vector<GemmOut>& outs, int64_t tokens) {
    bool one_pass = tokens <= kernels::kGemvMaxTokens && !outs.empty() && outs.size() <= static_cast<size_t>(kernels::kGemvMaxOutputs);
    for (size_t i = 0; one_pass && i < outs.size(); ++i) {
        const Matrix& m = *outs[i].w;
        one_pass = m.data && m.cols == outs[0].w->cols && m.cols % 8 == 0 &&
                   (i == 0 || m.data == outs[i - 1].w->data + outs[i - 1].w->rows * outs[i - 1].w->cols);
    }
    return one_pass;
}

Status CudaEngine::gemv_pass(const uint16_t* x, int64_t tokens, const std::vector<GemmOut>& outs, cudaStream_t stream) {
    kernels::GemvOutput targets[kernels::kGemvMaxOutputs];
    for (size_t i = 0; i < outs.size(); ++i) targets[i] = {outs[i].w->rows, outs[i].y};
    return check(kernels::launch_gemv_bf16_multi(outs[0].w->data, outs[0].w->cols, x, tokens, targets, static_cast<int>(outs.size()), stream),
                 "GEMV");
}

std::unique_ptr<Sequence> CudaEngine::new_sequence() {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    const ModelConfig& c = model_->config();
    return std::make_unique<CudaSequence>(geometry_, c.lightning_nh * c.lightning_head_dim * c.lightning_head_dim, c.lightning_layer_count(),
                                          c.sparse_layer_count());
}

Status CudaEngine::plan_step(CudaSequence& seq, int64_t n, int64_t first_sparse, int64_t logit_rows) {
    const ModelConfig& c = model_->config();
    const int64_t pos0 = seq.length();
    // Memory for this step, before allocating anything (after a prefill's plan, nothing grows).
    const int64_t grow = seq.growth_bytes(pos0 + n, /*exact=*/false);
    const int64_t need = grow + workspace_growth(n, pos0 + n);
    QUIRE_TRY(within_budget(need, pos0 + n));
    if (need > 0) {
        size_t free_b = 0, total_b = 0;
        QUIRE_TRY(check(cudaMemGetInfo(&free_b, &total_b), "memory query"));
        if (need > static_cast<int64_t>(free_b)) {
            char msg[200];
            std::snprintf(msg, sizeof msg, "this step needs %.2f GiB, the GPU has %.2f GiB free", gib(need), gib(static_cast<int64_t>(free_b)));
            return Status(ErrorCode::out_of_memory, msg);
        }
    }
    QUIRE_TRY(seq.reserve(pos0 + n));
    QUIRE_TRY(ensure_workspace(n, pos0 + n));
    // Scratch of the step's kernels: stage 1 and attention of a few queries take split paths.
    if (c.sparse_layer_count() > 0) {
        const SparseGeometry& g = geometry_;
        if (first_sparse < n) {
            // Stage 1's split path, whose scratch the selection then reuses for long rows (it is far
            // smaller: ~100 floats per 1,024 blocks against stage 1's 4 per block). Without that
            // path (GQA groups other than 16) there is none, as the memory planner counts, and the
            // selection takes one CTA per row.
            const int64_t stage1 = kernels::stage1_scratch_floats(n - first_sparse, pos0 + first_sparse, g.kv_heads, g.group);
            const int64_t scratch =
                stage1 > 0 ? std::max(stage1, kernels::select_decode_scratch_floats(n - first_sparse, pos0 + first_sparse, g.kv_heads, g.total_topk))
                           : 0;
            if (scratch > ws_.stage1_scratch.size()) QUIRE_TRY(check(ws_.stage1_scratch.allocate(scratch + (1 << 20)), "stage-1 scratch"));
        }
        if (kernels::decode_attention_applies(n, g.kv_heads, g.group)) {
            const int64_t scratch = kernels::decode_attention_scratch_floats(n, g.kv_heads, g.group, g.head_dim);
            if (scratch > ws_.attention_scratch.size()) QUIRE_TRY(check(ws_.attention_scratch.allocate(scratch), "attention scratch"));
        }
    }
    if (ws_.logits.size() < logit_rows * c.vocab_size) QUIRE_TRY(check(ws_.logits.allocate(logit_rows * c.vocab_size), "logits"));
    return Status::ok();
}

Status CudaEngine::forward(Sequence& s, const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                           std::vector<std::vector<float>>* logits, const kernels::SampleArgs* sample, int32_t* sampled) {
    CudaSequence& seq = as_cuda(s);
    if (!seq.valid_) return Status(ErrorCode::out_of_memory, "the GPU had no room for this sequence's Lightning states");
    if (n == 1) graph_.mark_forward_start();
    StepShape step;
    step.n = n;
    step.pos0 = seq.length();
    step.first_sparse = first_sparse_query(geometry_, options_.regime, step.pos0, n, request_end);
    step.ids = ids;
    step.logit_rows = rows;
    QUIRE_TRY(plan_step(seq, n, step.first_sparse, static_cast<int64_t>(rows.size())));
    // The step's inputs reach the device before its launches (and outside any graph): a decode
    // step's from pinned memory, a prefill chunk's ids straight from the caller's memory.
    if (n == 1) {
        step_host_->in.token = ids[0];
        step_host_->in.sample = sample ? *sample : kernels::SampleArgs{};
        QUIRE_TRY(check(cudaMemcpyAsync(step_in_.get(), &step_host_->in, sizeof(StepInputs), cudaMemcpyHostToDevice, stream_), "step inputs"));
    } else {
        QUIRE_TRY(check(cudaMemcpyAsync(ws_.ids.get(), ids, static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice, stream_), "token ids"));
    }
    const bool draw = sample && n == 1 && rows.size() == 1;
    std::vector<std::vector<float>> unused;  // the ops leave logits on the device
    std::vector<std::vector<float>>* want = rows.empty() ? nullptr : &unused;
    last_step_nodes_ = 0;
    last_step_segments_ = 0;
    profiler_.set_one_token_step(n == 1);
    if (n == 1 && graph_.enabled()) QUIRE_TRY(run_graph(seq, step, draw, want));
    else QUIRE_TRY(run_eager(seq, step, draw, want));
    counters_.forward_calls++;
    if (draw) QUIRE_TRY(check(cudaMemcpyAsync(&step_host_->sampled, sampled_.get(), 4, cudaMemcpyDeviceToHost, stream_), "sampled token"));
    const Status done = check(cudaStreamSynchronize(stream_), "forward");
    profiler_.collect();
    if (done && last_step_nodes_ > 0) graph_.collect_timing();
    QUIRE_TRY(done);
    if (draw) *sampled = step_host_->sampled;
    else if (!rows.empty() && logits) QUIRE_TRY(read_logits(static_cast<int64_t>(rows.size()), logits));
    return Status::ok();
}

Status CudaEngine::run_eager(CudaSequence& seq, const StepShape& step, bool sample, std::vector<std::vector<float>>* logits) {
    CudaSalaOps ops(*this, seq, step.n, {step.n == 1 ? &step_in_.get()->token : ws_.ids.get(), sample, nullptr});
    return sala_forward(model_->config(), ops, step, logits);
}

Status CudaEngine::run_graph(CudaSequence& seq, const StepShape& step, bool sample, std::vector<std::vector<float>>* logits) {
    // What the step changes on the host, restored when a recording fails before anything ran.
    const size_t tokens = seq.tokens_.size();
    const int64_t sparse_from = seq.sparse_from_;
    std::vector<std::pair<int64_t, int64_t>> entries;
    for (const LayerCache& l : seq.kv_) entries.emplace_back(l.n1, l.n2);
    auto restore = [&] {
        seq.tokens_.resize(tokens);
        seq.sparse_from_ = sparse_from;
        for (size_t i = 0; i < entries.size(); ++i) std::tie(seq.kv_[i].n1, seq.kv_[i].n2) = entries[i];
    };
    // The first step of each regime is recorded whole, so that a launch that cannot be recorded is
    // found before any layer ran; later steps are recorded and launched segment by segment.
    const int regime = step.first_sparse < step.n ? 1 : 0;
    const bool whole = !graph_checked_[regime];
    const int layers = static_cast<int>(model_->config().num_hidden_layers);
    graph_.begin_step();
    Status st = check(graph_.begin(stream_), "decode graph capture");
    if (st) {
        CudaSalaOps ops(*this, seq, 1, {&step_in_.get()->token, sample, whole ? nullptr : &graph_});
        st = sala_forward(model_->config(), ops, step, logits);
        if (st) st = check(graph_.end_and_launch(stream_, whole ? layers : layers - 1), "decode graph");
    }
    if (st) {
        graph_checked_[regime] = true;
        last_step_nodes_ = graph_.nodes_launched();
        last_step_segments_ = graph_.segments_launched();
        return Status::ok();
    }
    graph_.abort(stream_);
    if (graph_.segments_launched() > 0) return st;  // layers ran: as an eager step failing half way
    restore();
    // Nothing ran: the same step without a graph tells a recording problem from a real error.
    const Status eager = run_eager(seq, step, sample, logits);
    if (eager) graph_.disable(st.message());
    return eager;
}

Status CudaEngine::read_logits(int64_t rows, std::vector<std::vector<float>>* out) {
    const int64_t vocab = model_->config().vocab_size;
    std::vector<uint16_t> host(static_cast<size_t>(rows * vocab));
    QUIRE_TRY(check(cudaMemcpy(host.data(), ws_.logits.get(), host.size() * 2, cudaMemcpyDeviceToHost), "logits"));
    for (int64_t i = 0; i < rows; ++i) {
        std::vector<float> row(static_cast<size_t>(vocab));
        for (int64_t j = 0; j < vocab; ++j) row[static_cast<size_t>(j)] = bf16_to_float(host[static_cast<size_t>(i * vocab + j)]);
        out->push_back(std::move(row));
    }
    return Status::ok();
}

Status CudaEngine::prefill(Sequence& seq, const PrefillRequest& req, std::vector<std::vector<float>>* logits) {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    // Memory plan for the whole request, before any of it is computed: the sequence's state for the
    // final length, allocated once (no doubling), and the workspace of one chunk at that context.
    CudaSequence& cs = as_cuda(seq);
    const auto total = static_cast<int64_t>(req.tokens.size());
    if (total > 0) {
        const int64_t end = cs.length() + total, chunk = req.chunk > 0 ? std::min<int64_t>(req.chunk, total) : total;
        const int64_t state_more = cs.growth_bytes(end, /*exact=*/true);
        const int64_t ws_more = workspace_growth(chunk, end);
        QUIRE_TRY(within_budget(state_more + ws_more, end));
        if (state_more + ws_more > 0) {
            size_t free_b = 0, total_b = 0;
            QUIRE_TRY(check(cudaMemGetInfo(&free_b, &total_b), "memory query"));
            if (state_more + ws_more > static_cast<int64_t>(free_b)) {
                char msg[320];
                std::snprintf(msg, sizeof msg,
                              "a context of %lld tokens needs %.2f GiB more on the GPU (state %.2f GiB, workspace %.2f GiB), the GPU has %.2f GiB free",
                              static_cast<long long>(end), gib(state_more + ws_more), gib(state_more), gib(ws_more),
                              gib(static_cast<int64_t>(free_b)));
                return Status(ErrorCode::out_of_memory, msg);
            }
        }
        QUIRE_TRY(cs.reserve(end, /*exact=*/true));
    }
    auto step = [&](const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                    std::vector<std::vector<float>>* out) { return forward(seq, ids, n, request_end, rows, out); };
    return run_chunked_prefill(req, seq.length(), step, counters_, logits);
}

Status CudaEngine::decode(Sequence& seq, int32_t token, std::vector<float>* logits) {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    std::vector<std::vector<float>> got;
    QUIRE_TRY(forward(seq, &token, 1, seq.length() + 1, logits ? std::vector<int64_t>{0} : std::vector<int64_t>{}, &got));
    counters_.decoded_tokens++;
    if (logits) *logits = std::move(got[0]);
    return Status::ok();
}

Result<int32_t> CudaEngine::decode_and_sample(Sequence& seq, int32_t token, Sampler& sampler) {
    const SamplingOptions& o = sampler.options();
    if (o.repetition_penalty != 1.0f || std::isnan(o.temperature)) return Engine::decode_and_sample(seq, token, sampler);
    cudaSetDevice(options_.gpu);
    kernels::SampleArgs args;
    args.temperature = o.temperature;
    args.top_k = o.top_k;
    args.top_p = o.top_p;
    args.min_p = o.min_p;
    if (o.temperature > 0.0f) args.u = sampler.next_uniform();  // the one draw Sampler::sample makes
    int32_t next = 0;
    QUIRE_TRY(forward(seq, &token, 1, seq.length() + 1, {0}, nullptr, &args, &next));
    counters_.decoded_tokens++;
    return next;
}

Result<std::unique_ptr<Sequence>> CudaEngine::sequence_for_state(const StateHeader& header, std::vector<int32_t> tokens) {
    const int64_t N = header.token_count;
    QUIRE_TRY(within_budget(state_bytes(N), N));
    auto seq = std::unique_ptr<CudaSequence>(static_cast<CudaSequence*>(new_sequence().release()));
    if (!seq->valid_) return Status(ErrorCode::out_of_memory, "the GPU has no room for a sequence's Lightning states");
    QUIRE_TRY(seq->reserve(N, /*exact=*/true));
    seq->tokens_ = std::move(tokens);
    seq->sparse_from_ = header.sparse_from;
    for (LayerCache& layer : seq->kv_) {  // a loaded sequence owns all its rows; the codec fills them
        layer.n1 = geometry_.c1_entries(N);
        layer.n2 = geometry_.c2_entries(N);
    }
    return std::unique_ptr<Sequence>(std::move(seq));
}

Result<std::unique_ptr<Sequence>> CudaEngine::sequence_for_delta(const Sequence& prefix, const StateHeader& header,
                                                                 std::vector<int32_t> tokens) {
    cudaSetDevice(options_.gpu);
    const int64_t N = header.token_count;
    QUIRE_TRY(within_budget(state_bytes(N) - state_bytes(prefix.length()), N));
    // A fork reads the prefix's cache rows where they are; the delta's rows go to its own arrays.
    auto fork = std::unique_ptr<CudaSequence>(static_cast<CudaSequence*>(prefix.fork().release()));
    if (!fork) return Status(ErrorCode::out_of_memory, "the GPU has no room to continue from the prefix");
    QUIRE_TRY(fork->reserve(N, /*exact=*/true));
    fork->tokens_ = std::move(tokens);
    fork->sparse_from_ = header.sparse_from;
    for (LayerCache& layer : fork->kv_) {
        layer.n1 = geometry_.c1_entries(N);
        layer.n2 = geometry_.c2_entries(N);
    }
    return std::unique_ptr<Sequence>(std::move(fork));
}

std::unique_ptr<StateRows> CudaEngine::rows_to_save(const Sequence& s) {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    return std::make_unique<CudaStateRows>(*this, &as_cuda(s), nullptr);
}

std::unique_ptr<StateRows> CudaEngine::rows_to_load(Sequence& s) {
    cudaSetDevice(options_.gpu);
    return std::make_unique<CudaStateRows>(*this, nullptr, &as_cuda(s));
}

}  // namespace quire::cuda
