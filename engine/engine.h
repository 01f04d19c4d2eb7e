#pragma once
// The engine interface both backends implement: sequences (prefix states) that can be prefilled in
// chunks, decoded token by token, forked, saved and loaded.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine_options.h"
#include "model.h"
#include "state_file.h"
#include "status.h"

namespace quire {

enum class Backend { cpu, cuda };
const char* backend_name(Backend b);
bool parse_backend(const std::string& s, Backend& out);

struct PrefillProgress {
    int64_t done = 0;   // tokens of this request processed so far
    int64_t total = 0;  // tokens in this request
    double seconds = 0;
};

struct PrefillRequest {
    std::span<const int32_t> tokens;
    int64_t chunk = 0;  // tokens per forward call; 0: the whole request at once
    // Absolute positions (within the whole sequence) whose logits are wanted, in the order wanted.
    std::vector<int64_t> logits_positions;
    std::function<void(const PrefillProgress&)> on_progress;
    const std::atomic<bool>* cancel = nullptr;  // checked before every chunk
};

// Work done since the engine was created: lets tests assert what was (not) recomputed.
struct EngineCounters {
    int64_t prefilled_tokens = 0;
    int64_t decoded_tokens = 0;
    int64_t forward_calls = 0;
};

class Sampler;

class Sequence {
public:
    virtual ~Sequence() = default;
    virtual int64_t length() const = 0;
    virtual const std::vector<int32_t>& tokens() const = 0;
    // First position whose sparse-layer queries ran InfLLM-v2 (-1: none yet); saved with the state.
    virtual int64_t sparse_from() const = 0;
    // A child that continues independently; full KV blocks are shared, not copied (CPU engine; the
    // CUDA engine copies for now). nullptr when the device has no room for the child.
    virtual std::unique_ptr<Sequence> fork() const = 0;
};

class Engine {
public:
    virtual ~Engine() = default;
    virtual const Model& model() const = 0;
    virtual const EngineOptions& options() const = 0;
    virtual Backend backend() const = 0;
    virtual std::unique_ptr<Sequence> new_sequence() = 0;
    // Appends tokens; writes one logits row (vocab_size floats) per requested position. On cancel
    // returns ErrorCode::cancelled with the sequence holding every chunk completed so far.
    virtual Status prefill(Sequence& seq, const PrefillRequest& request, std::vector<std::vector<float>>* logits) = 0;
    // Appends one token and returns the logits after it.
    virtual Status decode(Sequence& seq, int32_t token, std::vector<float>* logits) = 0;
    // Appends one token and draws the next with `sampler`: decode() then sampler.sample(logits,
    // seq.tokens()) (generator.cpp). The CUDA engine draws on the GPU where the options allow
    // (kernels/sampling.h), so one token id comes back instead of a logits row.
    virtual Result<int32_t> decode_and_sample(Sequence& seq, int32_t token, Sampler& sampler);
    // State files, encoded and validated by the state codec (state_file.h) for every backend
    // (engine_state.cpp); backends only copy rows.
    // prefix_tokens > 0 saves a delta: what follows the sequence's first prefix_tokens tokens (a
    // chat on its library's prefix), a few MB where the whole state of a 1M prefix is 9 GB.
    Status save_state(const Sequence& seq, const std::string& path, int64_t prefix_tokens = 0);
    // The size of the file save_state would write, before writing it.
    int64_t state_file_bytes(const Sequence& seq, int64_t prefix_tokens = 0);
    // expected_tokens: when given, the state must hold exactly these tokens. A delta state needs
    // `prefix`, a sequence holding exactly the prefix it names; the result continues from it (sharing
    // its cache rows, as a fork does).
    Result<std::unique_ptr<Sequence>> load_state(const std::string& path, const std::vector<int32_t>* expected_tokens,
                                                 const Sequence* prefix = nullptr);
    const EngineCounters& counters() const { return counters_; }

protected:
    // The rows of a sequence for the codec to save (read_rows only).
    virtual std::unique_ptr<StateRows> rows_to_save(const Sequence& seq) = 0;
    // An empty sequence with room for a state of header.token_count tokens, holding `tokens`, and the
    // rows the codec fills it through (write_rows only).
    virtual Result<std::unique_ptr<Sequence>> sequence_for_state(const StateHeader& header, std::vector<int32_t> tokens) = 0;
    // For a delta state: a fork of `prefix` with room for header.token_count tokens, holding `tokens`.
    virtual Result<std::unique_ptr<Sequence>> sequence_for_delta(const Sequence& prefix, const StateHeader& header,
                                                                 std::vector<int32_t> tokens) = 0;
    virtual std::unique_ptr<StateRows> rows_to_load(Sequence& seq) = 0;

    EngineCounters counters_;
};

Result<std::unique_ptr<Engine>> create_engine(std::shared_ptr<const Model> model, Backend backend,
                                              const EngineOptions& options);

}  // namespace quire
