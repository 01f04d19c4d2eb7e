// libFuzzer target: the state codec (engine/state_file.h) must never crash, read out of bounds or
// hand a backend rows outside the model's layout, whatever the file holds. The model is a small
// two-layer configuration (one sparse, one Lightning layer); accepted files are streamed into a
// sink that checks every row range against the layout.
//
// QUIRE_STATE_FUZZ_WRITE_SEEDS=DIR makes the target write valid state files (fp32 and bf16 caches,
// below and above the C2 window) into DIR at start-up: that is how tests/fuzz/seeds_state was made.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "model_config.h"
#include "state_file.h"

namespace {

const char* kConfig = R"({"architectures":["MiniCPMSALAForCausalLM"],"model_type":"minicpm_sala","vocab_size":256,
"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":32,
"lightning_nh":2,"lightning_nkv":2,"lightning_head_dim":32,"mixer_types":["minicpm4","lightning-attn"],
"sparse_config":{"kernel_size":32,"kernel_stride":16,"init_blocks":1,"block_size":64,"window_size":2048,"topk":64,"use_nope":false,"dense_len":8192}})";
constexpr uint64_t kFingerprint = 0x51A1E57A7EF1ull;

const quire::ModelConfig& config() {
    static const quire::ModelConfig c = [] {
        auto parsed = quire::parse_model_config(kConfig);
        if (!parsed) __builtin_trap();
        return parsed.value();
    }();
    return c;
}

// Checks every call against the layout and remembers nothing.
class CheckingRows : public quire::StateRows {
public:
    CheckingRows(quire::SectionDType dtype, int64_t tokens) : dtype_(dtype), layout_(quire::state_layout(config(), tokens)) {}
    quire::SectionDType cache_dtype() const override { return dtype_; }
    quire::Status read_rows(const quire::SectionSpec& s, int64_t first, int64_t count, void* dst) override {
        check(s, first, count);
        const int64_t elem = s.kind == quire::SectionKind::lightning_state ? 4 : quire::dtype_bytes(dtype_);
        auto* p = static_cast<uint8_t*>(dst);
        for (int64_t i = 0; i < count * s.width * elem; ++i) p[i] = static_cast<uint8_t>((first * 131 + i * 7 + s.layer) & 0xFF);
        return quire::Status::ok();
    }
    quire::Status write_rows(const quire::SectionSpec& s, int64_t first, int64_t count, const void* src) override {
        check(s, first, count);
        const int64_t elem = s.kind == quire::SectionKind::lightning_state ? 4 : quire::dtype_bytes(dtype_);
        volatile uint8_t sink = 0;
        const auto* p = static_cast<const uint8_t*>(src);
        for (int64_t i = 0; i < count * s.width * elem; i += 64) sink = static_cast<uint8_t>(sink ^ p[i]);  // touch every page
        return quire::Status::ok();
    }

private:
    void check(const quire::SectionSpec& s, int64_t first, int64_t count) const {
        for (const auto& l : layout_)
            if (l.kind == s.kind && l.layer == s.layer) {
                if (l.rows != s.rows || l.width != s.width || first < 0 || count <= 0 || first + count > l.rows) __builtin_trap();
                return;
            }
        __builtin_trap();  // a section the model does not have reached the backend
    }
    quire::SectionDType dtype_;
    std::vector<quire::SectionSpec> layout_;
};

void write_seeds(const std::string& dir) {
    for (int64_t tokens : {0, 5, 40, 200}) {
        for (auto dtype : {quire::SectionDType::f32, quire::SectionDType::bf16}) {
            std::vector<int32_t> ids(static_cast<size_t>(tokens));
            for (int64_t i = 0; i < tokens; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37) % 256);
            quire::StateHeader h;
            h.model_fingerprint = kFingerprint;
            h.token_count = tokens;
            h.tokens_hash = quire::hash_tokens(ids);
            CheckingRows rows(dtype, tokens);
            const std::string path = dir + "/state_" + std::to_string(tokens) + (dtype == quire::SectionDType::f32 ? "_f32" : "_bf16");
            if (!quire::write_state(path, config(), h, ids, rows).is_ok()) __builtin_trap();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("QUIRE_STATE_FUZZ_WRITE_SEEDS")) write_seeds(dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const quire::StateExpectations expect{kFingerprint, 0, 0, nullptr};
    auto reader = quire::StateReader::open(quire::memory_byte_source(data, static_cast<int64_t>(size)), "fuzz", config(), expect);
    if (!reader) return 0;
    // Both kinds of backend: fp32 caches (CPU) and bf16 caches (CUDA), so both conversions run.
    CheckingRows rows(size % 2 ? quire::SectionDType::f32 : quire::SectionDType::bf16, reader->header().token_count);
    (void)reader->stream_into(rows);
    return 0;
}
