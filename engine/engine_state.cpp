// Engine::save_state / load_state: the state codec (state_file.h) around a backend's row copies.
#include "engine.h"

namespace quire {

Status Engine::save_state(const Sequence& seq, const std::string& path, int64_t prefix_tokens) {
    StateHeader h;
    h.model_fingerprint = model().fingerprint();
    h.token_count = seq.length();
    h.tokens_hash = hash_tokens(seq.tokens());
    h.sparse_from = seq.sparse_from();
    h.precision = static_cast<uint32_t>(options().precision);
    h.regime_rule = static_cast<uint32_t>(options().regime);
    auto rows = rows_to_save(seq);
    return write_state(path, model().config(), h, seq.tokens(), *rows, prefix_tokens);
}

int64_t Engine::state_file_bytes(const Sequence& seq, int64_t prefix_tokens) {
    return quire::state_file_bytes(model().config(), seq.length(), prefix_tokens, rows_to_save(seq)->cache_dtype());
}

Result<std::unique_ptr<Sequence>> Engine::load_state(const std::string& path, const std::vector<int32_t>* expected_tokens,
                                                     const Sequence* prefix) {
    const StateExpectations expect{model().fingerprint(), static_cast<uint32_t>(options().precision),
                                   static_cast<uint32_t>(options().regime), expected_tokens};
    auto reader = StateReader::open(path, model().config(), expect);
    if (!reader) return reader.status();
    const StatePrefix& base = reader->prefix();
    if (base.tokens > 0) {
        if (!prefix)
            return Status(ErrorCode::state_wrong_tokens, path + ": a delta on a prefix of " + std::to_string(base.tokens) +
                                                             " tokens, and no prefix was given");
        if (prefix->length() != base.tokens || hash_tokens(prefix->tokens()) != base.hash)
            return Status(ErrorCode::state_wrong_tokens, path + ": a delta on a prefix of " + std::to_string(base.tokens) +
                                                             " tokens that differs from the one given (" + std::to_string(prefix->length()) +
                                                             " tokens)");
    }
    auto seq = base.tokens > 0 ? sequence_for_delta(*prefix, reader->header(), reader->tokens())
                               : sequence_for_state(reader->header(), reader->tokens());
    if (!seq) return seq.status();
    auto rows = rows_to_load(**seq);
    QUIRE_TRY(reader->stream_into(*rows));  // on failure the half-filled sequence is dropped
    return seq;
}

}  // namespace quire
