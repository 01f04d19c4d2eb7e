#include "cuda/cuda_engine.h"

#include "cuda/cuda_sequence.h"

#include <cmath>
#include <cstring>

#include "attention_ops.h"
#include "bf16.h"
#include "cpu/lightning_attention.h"
#include "embedding.h"
#include "gemv.h"
#include "norm_ops.h"
#include "random_fill.h"
#include "prefill_loop.h"
#include "state_file.h"

namespace quire::cuda {

namespace {

int64_t entries(int64_t n, int64_t kernel, int64_t stride) { return n < kernel ? 0 : (n - kernel) / stride + 1; }
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
    const int64_t weights = model->config().parameter_count() * 2;
    const int64_t need = weights + (256LL << 20);
    if (need > static_cast<int64_t>(free_b)) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "the model needs %.1f GiB, the GPU has %.1f GiB free", gib(need), gib(static_cast<int64_t>(free_b)));
        return Status(ErrorCode::out_of_memory, msg);
    }
    std::unique_ptr<CudaEngine> e(new CudaEngine());
    e->model_ = std::move(model);
    e->options_ = options;
    if (cublasCreate(&e->blas_) != CUBLAS_STATUS_SUCCESS) return Status(ErrorCode::device_error, "cuBLAS did not start");
    // fp32 accumulation all the way: no reduced-precision split-K reductions.
    cublasSetMathMode(e->blas_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    QUIRE_TRY(e->upload());
    return std::unique_ptr<Engine>(std::move(e));
}

CudaEngine::~CudaEngine() {
    if (blas_) cublasDestroy(blas_);
}

Status CudaEngine::upload() {
    const ModelConfig& c = model_->config();
    const ModelWeights& w = model_->weights();
    uint64_t seed = 1;
    auto matrix = [&](Matrix& m, const MatrixRef& r) -> Status {
        m.rows = r.rows;
        m.cols = r.cols;
        if (r.rows == 0) return Status::ok();  // absent in this configuration
        QUIRE_TRY(check(m.data.allocate(r.rows * r.cols), "weights"));
        if (!r.data) {
            if (!model_->is_synthetic()) return Status(ErrorCode::invalid_argument, "a weight matrix has no data");
            // N(0, 1/fan_in)-like: activations keep unit scale through the random layers.
            const float stddev = 1.0f / std::sqrt(static_cast<float>(r.cols));
            return check(kernels::launch_fill_random_bf16(m.data.get(), r.rows * r.cols, seed++, stddev, nullptr), "random weights");
        }
        return check(cudaMemcpy(m.data.get(), r.data, static_cast<size_t>(r.rows * r.cols) * 2, cudaMemcpyHostToDevice), "weights");
    };
    QUIRE_TRY(matrix(embed_, w.embed));
    if (c.tie_word_embeddings) {
        lm_head_.rows = embed_.rows;  // shares the embedding's device copy
        lm_head_.cols = embed_.cols;
    } else {
        QUIRE_TRY(matrix(lm_head_, w.lm_head));
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
        for (auto [m, r] : {std::pair{&L.q, &lw.q}, std::pair{&L.k, &lw.k}, std::pair{&L.v, &lw.v}, std::pair{&L.o, &lw.o},
                            std::pair{&L.gate, &lw.gate}, std::pair{&L.mlp_gate, &lw.mlp_gate}, std::pair{&L.mlp_up, &lw.mlp_up},
                            std::pair{&L.mlp_down, &lw.mlp_down}})
            QUIRE_TRY(matrix(*m, *r));
        layers_.push_back(std::move(L));
    }
    return Status::ok();
}

int64_t CudaEngine::state_bytes(int64_t tokens) const {
    const ModelConfig& c = model_->config();
    const int64_t width = c.num_key_value_heads * c.head_dim * 2;
    const int64_t per_layer = 2 * tokens * width + (entries(tokens, 32, 16) + entries(tokens, 128, 64)) * width;
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

Status CudaEngine::gemm(const uint16_t* x, int64_t tokens, const Matrix& w, uint16_t* y) {
    // A few tokens (decode): a weight-streaming GEMV beats cuBLAS's small-n GEMM.
    if (tokens <= kernels::kGemvMaxTokens && w.cols % 8 == 0)
        return check(kernels::launch_gemv_bf16(w.data.get(), w.rows, w.cols, x, tokens, y, nullptr), "GEMV");
    // Row-major y[tokens, rows] = x[tokens, cols] . W[rows, cols]^T, as column-major y^T = W . x^T.
    const float one = 1.0f, zero = 0.0f;
    const cublasStatus_t s = cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows), static_cast<int>(tokens),
                                          static_cast<int>(w.cols), &one, w.data.get(), CUDA_R_16BF, static_cast<int>(w.cols), x,
                                          CUDA_R_16BF, static_cast<int>(w.cols), &zero, y, CUDA_R_16BF, static_cast<int>(w.rows),
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) return Status(ErrorCode::device_error, "cuBLAS GEMM failed (status " + std::to_string(s) + ")");
    return Status::ok();
}

std::unique_ptr<Sequence> CudaEngine::new_sequence() {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    const ModelConfig& c = model_->config();
    return std::make_unique<CudaSequence>(c.num_key_value_heads * c.head_dim, c.lightning_nh * c.lightning_head_dim * c.lightning_head_dim,
                                          c.lightning_layer_count(), c.sparse_layer_count());
}

Status CudaEngine::forward(Sequence& s, const int32_t* ids, int64_t n, int64_t request_end, const std::vector<int64_t>& rows,
                           std::vector<std::vector<float>>* logits) {
    CudaSequence& seq = as_cuda(s);
    const ModelConfig& c = model_->config();
    const int64_t H = c.hidden_size, pos0 = seq.length();
    if (!seq.valid_) return Status(ErrorCode::out_of_memory, "the GPU had no room for this sequence's Lightning states");
    for (int64_t t = 0; t < n; ++t)
        if (ids[t] < 0 || ids[t] >= c.vocab_size)
            return Status(ErrorCode::invalid_argument, "token id " + std::to_string(ids[t]) + " is outside the vocabulary");
    // Memory plan for this step, before allocating anything (after a prefill's plan, nothing grows).
    const int64_t grow = seq.capacity_ >= pos0 + n ? 0 : state_bytes(std::max<int64_t>(pos0 + n, 2 * seq.capacity_));
    const int64_t need = grow + workspace_growth(n, pos0 + n);
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
    uint16_t *x = ws_.x.get(), *h = ws_.h.get(), *a = ws_.a.get();
    uint16_t *b0 = ws_.b0.get(), *b1 = ws_.b1.get(), *b2 = ws_.b2.get(), *b3 = ws_.b3.get(), *b4 = ws_.b4.get();
// A kernel launch (an expression giving cudaError_t) timed under its category when profiling.
#define QUIRE_LAUNCH(op, what, ...) QUIRE_TRY(profiler_.time(op, [&] { return check((__VA_ARGS__), what); }))
    auto gemm_t = [&](const uint16_t* in, const Matrix& w, uint16_t* out) { return profiler_.time(Op::gemm, [&] { return gemm(in, n, w, out); }); };

    QUIRE_TRY(check(cudaMemcpy(ws_.ids.get(), ids, static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice), "token ids"));
    QUIRE_LAUNCH(Op::embedding, "embedding", kernels::launch_embedding(embed_.data.get(), c.vocab_size, H, ws_.ids.get(), n, static_cast<float>(c.scale_emb), x, nullptr));
    const float r = static_cast<float>(c.residual_scale());
    const float eps = static_cast<float>(c.rms_norm_eps);

    // Which queries of this chunk are sparse: a suffix of it under either regime rule.
    int64_t first_sparse = n;
    for (int64_t t = 0; t < n; ++t) {
        const bool sp = options_.regime == RegimeRule::per_query ? pos0 + t + 1 >= c.sparse.dense_len : request_end >= c.sparse.dense_len;
        if (sp) {
            first_sparse = t;
            break;
        }
    }
    const int64_t topk = c.sparse.effective_topk();

    for (size_t l = 0; l < layers_.size(); ++l) {
        const Layer& L = layers_[l];
        if (l == 0) QUIRE_LAUNCH(Op::norms, "input norm", kernels::launch_rms_norm(x, L.input_norm.get(), n, H, eps, h, nullptr));
        if (!L.sparse) {
            const int64_t nh = c.lightning_nh, d = c.lightning_head_dim, width = nh * d;
            QUIRE_TRY(gemm_t(h, L.q, b0));
            QUIRE_TRY(gemm_t(h, L.k, b1));
            QUIRE_TRY(gemm_t(h, L.v, b2));
            if (L.q_norm.size()) {
                QUIRE_LAUNCH(Op::norms, "q norm", kernels::launch_rms_norm(b0, L.q_norm.get(), n * nh, d, eps, b0, nullptr));
                QUIRE_LAUNCH(Op::norms, "k norm", kernels::launch_rms_norm(b1, L.k_norm.get(), n * nh, d, eps, b1, nullptr));
            }
            if (c.lightning_use_rope) {
                QUIRE_LAUNCH(Op::norms, "rope", kernels::launch_rope(b0, n, nh, d, pos0, static_cast<float>(c.rope_theta), nullptr));
                QUIRE_LAUNCH(Op::norms, "rope", kernels::launch_rope(b1, n, nh, d, pos0, static_cast<float>(c.rope_theta), nullptr));
            }
            QUIRE_LAUNCH(Op::lightning, "lightning", kernels::launch_lightning(b0, b1, b2, n, pos0, nh, d, d, slopes_.get(),
                                                                     seq.lightning_[static_cast<size_t>(slot_[l])].get(), b3, nullptr));
            if (L.o_norm.size()) QUIRE_LAUNCH(Op::norms, "o norm", kernels::launch_rms_norm(b3, L.o_norm.get(), n, width, eps, b3, nullptr));
            if (L.gate.data.get()) {
                QUIRE_TRY(gemm_t(h, L.gate, b4));
                QUIRE_LAUNCH(Op::norms, "gate", kernels::launch_sigmoid_gate(b3, b4, n * width, nullptr));
            }
            QUIRE_TRY(gemm_t(b3, L.o, a));
        } else {
            const int64_t kv = c.num_key_value_heads, d = c.head_dim, G = c.gqa_group(), width = kv * d, qw = c.num_attention_heads * d;
            LayerCache& st = seq.kv_[static_cast<size_t>(slot_[l])];
            QUIRE_TRY(gemm_t(h, L.q, b0));
            QUIRE_TRY(gemm_t(h, L.k, st.own->k.get() + (pos0 - st.base_rows) * width));  // straight into the cache
            QUIRE_TRY(gemm_t(h, L.v, st.own->v.get() + (pos0 - st.base_rows) * width));
            const int64_t n1 = entries(pos0 + n, 32, 16), n2 = entries(pos0 + n, 128, 64);
            QUIRE_LAUNCH(Op::kv_cache, "C1", kernels::launch_compress_keys(st.k(), width, 32, 16, st.n1, n1 - st.n1, st.own->c1.get() + (st.n1 - st.base_n1) * width, nullptr));
            QUIRE_LAUNCH(Op::kv_cache, "C2", kernels::launch_compress_keys(st.k(), width, 128, 64, st.n2, n2 - st.n2, st.own->c2.get() + (st.n2 - st.base_n2) * width, nullptr));
            st.n1 = n1;
            st.n2 = n2;
            if (first_sparse < n) {
                const int64_t ts = n - first_sparse, p_first = pos0 + first_sparse;
                const int64_t stride = (pos0 + n - 1) / 64 + 1;
                const int64_t scratch = kernels::stage1_scratch_floats(ts, p_first, kv, G);
                if (scratch > ws_.stage1_scratch.size()) QUIRE_TRY(check(ws_.stage1_scratch.allocate(scratch + (1 << 20)), "stage-1 scratch"));
                QUIRE_LAUNCH(Op::stage1, "stage 1", kernels::launch_stage1_blocks(b0 + first_sparse * qw, st.c1(), st.c2(), ts, p_first, kv, G, d,
                                                                          stride, ws_.block_scores.get(), ws_.stage1_scratch.get(),
                                                                          ws_.stage1_scratch.size(), nullptr));
                QUIRE_LAUNCH(Op::selection, "block selection", kernels::launch_select_blocks(ws_.block_scores.get(), ts, p_first, kv, stride, c.sparse.init_blocks,
                                                                             c.sparse.local_blocks(), topk, ws_.selected.get(), nullptr));
                if (seq.sparse_from_ < 0) seq.sparse_from_ = p_first;
            }
            if (kernels::decode_attention_applies(n, kv, G)) {
                const int64_t scratch = kernels::decode_attention_scratch_floats(n, kv, G, d);
                if (scratch > ws_.attention_scratch.size()) QUIRE_TRY(check(ws_.attention_scratch.allocate(scratch), "attention scratch"));
                QUIRE_LAUNCH(Op::attention, "attention", kernels::launch_decode_attention(b0, st.k(), st.v(), n, pos0, kv, d, ws_.selected.get(),
                                                                                first_sparse, topk, ws_.attention_scratch.get(), b3, nullptr));
            } else {
                QUIRE_LAUNCH(Op::attention, "attention", kernels::launch_block_attention(b0, st.k(), st.v(), n, pos0, kv, G, d, ws_.selected.get(),
                                                                               first_sparse, topk, b3, nullptr));
            }
            if (L.gate.data.get()) {
                QUIRE_TRY(gemm_t(h, L.gate, b4));
                QUIRE_LAUNCH(Op::norms, "gate", kernels::launch_sigmoid_gate(b3, b4, n * qw, nullptr));
            }
            QUIRE_TRY(gemm_t(b3, L.o, a));
        }
        QUIRE_LAUNCH(Op::norms, "residual + post norm", kernels::launch_add_rms_norm(x, a, r, L.post_norm.get(), n, H, eps, h, nullptr));
        QUIRE_TRY(gemm_t(h, L.mlp_gate, b0));
        QUIRE_TRY(gemm_t(h, L.mlp_up, b1));
        QUIRE_LAUNCH(Op::norms, "swiglu", kernels::launch_silu_mul(b0, b1, n * c.intermediate_size, b0, nullptr));
        QUIRE_TRY(gemm_t(b0, L.mlp_down, a));
        // The layer's last residual add, fused with the next layer's input norm where there is one.
        if (l + 1 < layers_.size())
            QUIRE_LAUNCH(Op::norms, "residual + input norm",
                         kernels::launch_add_rms_norm(x, a, r, layers_[l + 1].input_norm.get(), n, H, eps, h, nullptr));
        else
            QUIRE_LAUNCH(Op::norms, "residual", kernels::launch_residual_add(x, a, r, n * H, nullptr));
    }
    seq.tokens_.insert(seq.tokens_.end(), ids, ids + n);
    counters_.forward_calls++;
    if (!rows.empty() && logits) {
        const auto m = static_cast<int64_t>(rows.size());
        const Matrix& head = lm_head_.data.get() ? lm_head_ : embed_;
        if (ws_.logits.size() < m * c.vocab_size) QUIRE_TRY(check(ws_.logits.allocate(m * c.vocab_size), "logits"));
        uint16_t* out = ws_.logits.get();
        auto head_logits = [&]() -> Status {
            for (int64_t i = 0; i < m; ++i)
                if (cudaError_t e = cudaMemcpyAsync(h + i * H, x + rows[static_cast<size_t>(i)] * H, static_cast<size_t>(H) * 2,
                                                    cudaMemcpyDeviceToDevice, nullptr); e != cudaSuccess)
                    return check(e, "logit rows");
            if (Status st = check(kernels::launch_rms_norm(h, final_norm_.get(), m, H, eps, h, nullptr), "final norm"); !st) return st;
            if (Status st = check(kernels::launch_scale(h, static_cast<float>(1.0 / c.logit_divisor()), m * H, nullptr), "logit scale"); !st) return st;
            return gemm(h, m, head, out);
        };
        QUIRE_TRY(profiler_.time(Op::logits, head_logits));
        std::vector<uint16_t> host(static_cast<size_t>(m * c.vocab_size));
        QUIRE_TRY(check(cudaMemcpy(host.data(), out, host.size() * 2, cudaMemcpyDeviceToHost), "logits"));
        for (int64_t i = 0; i < m; ++i) {
            std::vector<float> row(static_cast<size_t>(c.vocab_size));
            for (int64_t j = 0; j < c.vocab_size; ++j) row[static_cast<size_t>(j)] = bf16_to_float(host[static_cast<size_t>(i * c.vocab_size + j)]);
            logits->push_back(std::move(row));
        }
    }
    const Status done = check(cudaDeviceSynchronize(), "forward");
    profiler_.collect();
    return done;
}
#undef QUIRE_LAUNCH

Status CudaEngine::prefill(Sequence& seq, const PrefillRequest& req, std::vector<std::vector<float>>* logits) {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    // Memory plan for the whole request, before any of it is computed: the sequence's state for the
    // final length, allocated once (no doubling), and the workspace of one chunk at that context.
    CudaSequence& cs = as_cuda(seq);
    const auto total = static_cast<int64_t>(req.tokens.size());
    if (total > 0) {
        const int64_t end = cs.length() + total, chunk = req.chunk > 0 ? std::min<int64_t>(req.chunk, total) : total;
        const int64_t state_more = cs.capacity_ >= end ? 0 : state_bytes(end) - state_bytes(cs.capacity_);
        const int64_t ws_more = workspace_growth(chunk, end);
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
    QUIRE_TRY(forward(seq, &token, 1, seq.length() + 1, {0}, &got));
    counters_.decoded_tokens++;
    if (logits) *logits = std::move(got[0]);
    return Status::ok();
}

Status CudaEngine::save_state(const Sequence& s, const std::string& path) {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    const CudaSequence& seq = as_cuda(s);
    const ModelConfig& c = model_->config();
    const StateHeader h = make_state_header(model_->fingerprint(), static_cast<uint32_t>(options_.precision),
                                            static_cast<uint32_t>(options_.regime), seq.tokens_, seq.sparse_from_);
    std::vector<StateSection> sections;
    sections.push_back(make_token_section(seq.tokens_));
    const int64_t width = seq.width_;
    // Cache rows: the shared prefix's part, then the sequence's own.
    auto download = [&](SectionKind kind, uint32_t layer, const kernels::RowSource& src, int64_t rows) -> Status {
        StateSection sec{kind, layer, SectionDType::bf16, std::vector<uint8_t>(static_cast<size_t>(rows * width * 2))};
        const int64_t shared = std::min(rows, src.split);
        if (shared > 0)
            QUIRE_TRY(staging_.download(sec.bytes.data(), src.base, shared * width * 2));
        if (rows > shared)
            QUIRE_TRY(staging_.download(sec.bytes.data() + shared * width * 2, src.own, (rows - shared) * width * 2));
        sections.push_back(std::move(sec));
        return Status::ok();
    };
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const auto slot = static_cast<size_t>(slot_[static_cast<size_t>(l)]);
        const auto layer = static_cast<uint32_t>(l);
        if (!layers_[static_cast<size_t>(l)].sparse) {
            StateSection sec{SectionKind::lightning_state, layer, SectionDType::f32, std::vector<uint8_t>(static_cast<size_t>(seq.lightning_[slot].size() * 4))};
            QUIRE_TRY(staging_.download(sec.bytes.data(), seq.lightning_[slot].get(), static_cast<int64_t>(sec.bytes.size())));
            sections.push_back(std::move(sec));
        } else {
            const LayerCache& st = seq.kv_[slot];
            QUIRE_TRY(download(SectionKind::sparse_k, layer, st.k(), seq.length()));
            QUIRE_TRY(download(SectionKind::sparse_v, layer, st.v(), seq.length()));
            QUIRE_TRY(download(SectionKind::sparse_c1, layer, st.c1(), st.n1));
            QUIRE_TRY(download(SectionKind::sparse_c2, layer, st.c2(), st.n2));
        }
    }
    return write_state_file(path, h, sections);
}

Result<std::unique_ptr<Sequence>> CudaEngine::load_state(const std::string& path, const std::vector<int32_t>* expected_tokens) {
    cudaSetDevice(options_.gpu);  // the caller's thread may not have it current
    auto loaded = read_state_file(path, {model_->fingerprint(), static_cast<uint32_t>(options_.precision),
                                          static_cast<uint32_t>(options_.regime), expected_tokens});
    if (!loaded) return loaded.status();
    const ModelConfig& c = model_->config();
    const int64_t N = loaded->header.token_count;
    auto seq = std::unique_ptr<CudaSequence>(static_cast<CudaSequence*>(new_sequence().release()));
    if (!seq->valid_) return Status(ErrorCode::out_of_memory, "the GPU has no room for a sequence's Lightning states");
    QUIRE_TRY(seq->reserve(N));
    seq->sparse_from_ = loaded->header.sparse_from;
    const int64_t width = seq->width_;
    for (const StateSection& sec : loaded->sections) {
        if (sec.kind == SectionKind::tokens) {
            seq->tokens_.resize(sec.bytes.size() / 4);
            std::memcpy(seq->tokens_.data(), sec.bytes.data(), sec.bytes.size());
            continue;
        }
        if (sec.layer >= static_cast<uint32_t>(c.num_hidden_layers))
            return Status(ErrorCode::state_malformed, path + ": a section names a layer this model does not have");
        const auto slot = static_cast<size_t>(slot_[sec.layer]);
        const bool sparse = layers_[sec.layer].sparse;
        if (sec.kind == SectionKind::lightning_state) {
            if (sparse || sec.dtype != SectionDType::f32 || static_cast<int64_t>(sec.bytes.size()) != seq->lightning_[slot].size() * 4)
                return Status(ErrorCode::state_malformed, path + ": a Lightning section does not match the model");
            QUIRE_TRY(staging_.upload(seq->lightning_[slot].get(), sec.bytes.data(), static_cast<int64_t>(sec.bytes.size())));
            continue;
        }
        if (!sparse) return Status(ErrorCode::state_malformed, path + ": KV section for a Lightning layer");
        LayerCache& st = seq->kv_[slot];  // a loaded sequence owns all its rows
        const int64_t rows = sec.kind == SectionKind::sparse_c1 ? entries(N, 32, 16) : sec.kind == SectionKind::sparse_c2 ? entries(N, 128, 64) : N;
        // bf16 as the GPU holds it goes up as it is; fp32 (a CPU engine's state) is rounded on the way.
        const auto count = static_cast<size_t>(rows * width);
        uint16_t* dst = sec.kind == SectionKind::sparse_k ? st.own->k.get() : sec.kind == SectionKind::sparse_v ? st.own->v.get()
                      : sec.kind == SectionKind::sparse_c1 ? st.own->c1.get() : st.own->c2.get();
        if (sec.dtype == SectionDType::bf16 && sec.bytes.size() == count * 2) {
            QUIRE_TRY(staging_.upload(dst, sec.bytes.data(), static_cast<int64_t>(count * 2)));
        } else if (sec.dtype == SectionDType::f32 && sec.bytes.size() == count * 4) {
            std::vector<uint16_t> bf(count);
            for (size_t i = 0; i < bf.size(); ++i) {
                float f;
                std::memcpy(&f, sec.bytes.data() + 4 * i, 4);
                bf[i] = float_to_bf16(f);
            }
            QUIRE_TRY(staging_.upload(dst, bf.data(), static_cast<int64_t>(count * 2)));
        } else {
            return Status(ErrorCode::state_malformed, path + ": a KV section has the wrong size");
        }
        if (sec.kind == SectionKind::sparse_c1) st.n1 = rows;
        if (sec.kind == SectionKind::sparse_c2) st.n2 = rows;
    }
    return std::unique_ptr<Sequence>(std::move(seq));
}

}  // namespace quire::cuda
