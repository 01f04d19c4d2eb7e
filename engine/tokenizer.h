#pragma once
// Tokenizer: sentencepiece for text, plus the added special tokens of the model folder
// (tokenizer_config.json, special_tokens_map.json, added_tokens.json). Special tokens are produced
// only where the chat template places them, never recognised inside user text.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace quire {

struct PromptSegment;

class Tokenizer {
public:
    // Loads tokenizer.model and the JSON side files from a model folder. vocab_size is the model's
    // (config.json); every token id must fall below it.
    static Result<Tokenizer> load(const std::string& model_dir, int64_t vocab_size);

    // Encodes user or document text. `at_start`: the text begins the sequence (gets the
    // sentencepiece dummy prefix); otherwise it follows a special token (see legacy()).
    std::vector<int32_t> encode_text(std::string_view text, bool at_start = true) const;
    // Encodes a rendered chat prompt, BOS first when add_bos() says so.
    std::vector<int32_t> encode_prompt(const std::vector<PromptSegment>& segments) const;
    // Encodes segments that continue a sequence (no BOS; text not at the start unless at_start).
    std::vector<int32_t> encode_segments(const std::vector<PromptSegment>& segments, bool at_start) const;
    // Decodes ids to text; special tokens are written as their text unless skip_special.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

    int32_t special_id(std::string_view content) const;  // -1 when the tokenizer has no such token
    const std::map<int32_t, std::string>& special_tokens() const { return special_by_id_; }
    bool is_special(int32_t id) const { return special_by_id_.count(id) != 0; }
    int32_t bos_id() const { return bos_id_; }
    int32_t eos_id() const { return eos_id_; }
    int32_t unk_id() const { return unk_id_; }
    bool add_bos() const { return add_bos_; }
    // HF "legacy" flag (tokenizer_config.json, default true): when true, text after a special token
    // gets the dummy "▁" prefix like text at the start; when false it does not. ⚠ docs/model.md §7:
    // the real model's normaliser behaviour after special tokens is unverified, so this follows the
    // flag in the model's own files.
    bool legacy() const { return legacy_; }
    int64_t piece_count() const;  // sentencepiece vocabulary
    int64_t vocab_size() const { return vocab_size_; }
    // Equal for two tokenizers exactly when encode_text gives the same ids (cached ids are keyed by it).
    uint64_t fingerprint() const { return fingerprint_; }
    std::string piece(int32_t id) const;

private:
    std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_no_prefix_;  // same model, no dummy prefix
    std::map<std::string, int32_t, std::less<>> special_by_text_;
    std::map<int32_t, std::string> special_by_id_;
    int32_t bos_id_ = 1;
    int32_t eos_id_ = 2;
    int32_t unk_id_ = 0;
    bool add_bos_ = true;
    bool legacy_ = true;
    uint64_t fingerprint_ = 0;
    int64_t vocab_size_ = 0;
};

}  // namespace quire
