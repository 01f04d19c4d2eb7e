#include "tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>

#include "chat_template.h"
#include "file_util.h"
#include "hash.h"
#include "json.h"

namespace fs = std::filesystem;

namespace quire {

namespace {

// --- Minimal protobuf wire handling, just enough to switch off add_dummy_prefix -------------------
// sentencepiece's ModelProto keeps NormalizerSpec in field 3; NormalizerSpec.add_dummy_prefix is
// field 3 (bool). Appending "field 3 = 0" to the NormalizerSpec bytes overrides the earlier value
// (protobuf: the last occurrence of a scalar wins). HF's LlamaTokenizer does the same edit for
// legacy=false.
bool read_varint(const std::string& s, size_t& pos, uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
        const auto b = static_cast<uint8_t>(s[pos++]);
        out |= static_cast<uint64_t>(b & 0x7F) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}
void write_varint(std::string& s, uint64_t v) {
    while (v >= 0x80) {
        s += static_cast<char>((v & 0x7F) | 0x80);
        v >>= 7;
    }
    s += static_cast<char>(v);
}
bool disable_dummy_prefix(const std::string& proto, std::string& out) {
    size_t pos = 0;
    bool found = false;
    while (pos < proto.size()) {
        const size_t field_start = pos;
        uint64_t tag = 0;
        if (!read_varint(proto, pos, tag)) return false;
        const uint64_t field = tag >> 3, wire = tag & 7;
        if (wire == 0) {
            uint64_t v;
            if (!read_varint(proto, pos, v)) return false;
        } else if (wire == 1) {
            pos += 8;
        } else if (wire == 5) {
            pos += 4;
        } else if (wire == 2) {
            uint64_t len = 0;
            if (!read_varint(proto, pos, len) || pos + len > proto.size()) return false;
            if (field == 3) {
                std::string payload = proto.substr(pos, len);
                payload += '\x18';  // field 3, varint
                payload += '\x00';  // false
                out += proto.substr(field_start, 0);
                write_varint(out, tag);
                write_varint(out, payload.size());
                out += payload;
                pos += len;
                found = true;
                continue;
            }
            pos += len;
        } else {
            return false;
        }
        if (pos > proto.size()) return false;
        out += proto.substr(field_start, pos - field_start);
    }
    return found;
}

std::string token_content(const JsonValue* v) {
    if (!v) return {};
    if (v->is_string()) return v->as_string();
    if (v->is_object())
        if (const JsonValue* c = v->find("content"); c && c->is_string()) return c->as_string();
    return {};
}

Result<JsonValue> load_optional_json(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return JsonValue();
    auto text = read_text_file(path.string(), 32 << 20);
    if (!text) return Status(ErrorCode::invalid_tokenizer, text.status().message());
    auto parsed = parse_json(text.value());
    if (!parsed) return Status(ErrorCode::invalid_tokenizer, path.filename().string() + ": " + parsed.status().message());
    if (!parsed->is_object()) return Status(ErrorCode::invalid_tokenizer, path.filename().string() + ": not a JSON object");
    return parsed;
}

}  // namespace

Result<Tokenizer> Tokenizer::load(const std::string& model_dir, int64_t vocab_size) {
    const fs::path dir(model_dir);
    Tokenizer t;
    t.vocab_size_ = vocab_size;
    auto proto = read_text_file((dir / "tokenizer.model").string(), 256 << 20);
    if (!proto) return Status(ErrorCode::invalid_tokenizer, "tokenizer.model: " + proto.status().message());
    t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
    if (auto s = t.sp_->LoadFromSerializedProto(proto.value()); !s.ok())
        return Status(ErrorCode::invalid_tokenizer, "tokenizer.model: not a sentencepiece model (" + s.ToString() + ")");
    std::string no_prefix;
    t.sp_no_prefix_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
    if (!disable_dummy_prefix(proto.value(), no_prefix) || !t.sp_no_prefix_->LoadFromSerializedProto(no_prefix).ok())
        t.sp_no_prefix_ = t.sp_;  // no normaliser spec to edit: the model has no dummy prefix anyway
    if (t.sp_->GetPieceSize() > vocab_size)
        return Status(ErrorCode::invalid_tokenizer, "tokenizer.model has " + std::to_string(t.sp_->GetPieceSize()) +
                                                        " pieces, more than vocab_size " + std::to_string(vocab_size));
    t.unk_id_ = t.sp_->unk_id();
    t.bos_id_ = t.sp_->bos_id();
    t.eos_id_ = t.sp_->eos_id();

    std::vector<std::string> problems;
    auto add_special = [&](const std::string& content, int64_t id, const std::string& source) {
        if (content.empty()) return;
        if (id < 0 || id >= vocab_size) {
            problems.push_back(source + ": token '" + content + "' has id " + std::to_string(id) +
                               ", outside the vocabulary of " + std::to_string(vocab_size));
            return;
        }
        if (auto it = t.special_by_text_.find(content); it != t.special_by_text_.end() && it->second != id) {
            problems.push_back(source + ": token '" + content + "' has id " + std::to_string(id) + " but id " +
                               std::to_string(it->second) + " elsewhere");
            return;
        }
        t.special_by_text_[content] = static_cast<int32_t>(id);
        t.special_by_id_[static_cast<int32_t>(id)] = content;
    };

    auto config = load_optional_json(dir / "tokenizer_config.json");
    if (!config) return config.status();
    auto added = load_optional_json(dir / "added_tokens.json");
    if (!added) return added.status();
    auto special_map = load_optional_json(dir / "special_tokens_map.json");
    if (!special_map) return special_map.status();

    if (const JsonValue* dec = config->find("added_tokens_decoder"); dec && dec->is_object()) {
        for (const auto& [id_text, v] : dec->members()) {
            char* end = nullptr;
            const long long id = std::strtoll(id_text.c_str(), &end, 10);
            if (id_text.empty() || *end != '\0') {
                problems.push_back("tokenizer_config.json: added_tokens_decoder key '" + id_text + "' is not an id");
                continue;
            }
            add_special(token_content(&v), id, "tokenizer_config.json");
        }
    }
    if (added->is_object())
        for (const auto& [content, v] : added->members()) {
            if (!v.is_integer()) {
                problems.push_back("added_tokens.json: id of '" + content + "' is not an integer");
                continue;
            }
            add_special(content, v.as_int(), "added_tokens.json");
        }
    // Named special tokens (bos/eos/unk) that live inside the sentencepiece vocabulary.
    auto named = [&](const char* key) {
        std::string c = token_content(config->find(key));
        if (c.empty()) c = token_content(special_map->find(key));
        return c;
    };
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
        const std::string c = named(key);
        if (c.empty() || t.special_by_text_.count(c)) continue;
        const int id = t.sp_->PieceToId(c);
        if (id != t.sp_->unk_id() || c == t.sp_->IdToPiece(t.sp_->unk_id())) add_special(c, id, "tokenizer_config.json");
        else problems.push_back(std::string("tokenizer_config.json: ") + key + " '" + c + "' is not in the vocabulary");
    }
    if (const JsonValue* extra = special_map->find("additional_special_tokens"); extra && extra->is_array())
        for (const auto& v : extra->items()) {
            const std::string c = token_content(&v);
            if (!c.empty() && !t.special_by_text_.count(c))
                problems.push_back("special_tokens_map.json: additional special token '" + c + "' has no id");
        }
    if (const std::string bos = named("bos_token"); !bos.empty() && t.special_by_text_.count(bos))
        t.bos_id_ = t.special_by_text_.at(bos);
    if (const JsonValue* v = config->find("add_bos_token"); v && v->is_bool()) t.add_bos_ = v->as_bool();
    if (const JsonValue* v = config->find("legacy"); v && v->is_bool()) t.legacy_ = v->as_bool();
    if (t.special_id("<|im_end|>") >= 0) t.eos_id_ = t.special_id("<|im_end|>");
    for (const char* required : {"<|im_start|>", "<|im_end|>"})
        if (t.special_id(required) < 0) problems.push_back(std::string("special token ") + required + " is not defined");

    if (!problems.empty()) {
        std::string msg;
        for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
        return Status(ErrorCode::invalid_tokenizer, msg);
    }
    // Everything encode_text's result depends on: the model, the special tokens, the flags, and
    // kEncoderVersion (raised whenever this file changes how text becomes ids).
    constexpr uint64_t kEncoderVersion = 1;
    uint64_t f = hash64(proto.value(), kEncoderVersion);
    for (const auto& [text, id] : t.special_by_text_) f = hash64(text + "=" + std::to_string(id), f);
    f = hash64(std::to_string(t.legacy_) + std::to_string(t.add_bos_) + std::to_string(t.vocab_size_), f);
    t.fingerprint_ = f;
    return t;
}

int32_t Tokenizer::special_id(std::string_view content) const {
    auto it = special_by_text_.find(content);
    return it == special_by_text_.end() ? -1 : it->second;
}

int64_t Tokenizer::piece_count() const { return sp_->GetPieceSize(); }

std::string Tokenizer::piece(int32_t id) const {
    if (auto it = special_by_id_.find(id); it != special_by_id_.end()) return it->second;
    if (id >= 0 && id < sp_->GetPieceSize()) return sp_->IdToPiece(id);
    return {};
}

std::vector<int32_t> Tokenizer::encode_text(std::string_view text, bool at_start) const {
    std::vector<int> ids;
    const bool prefix = at_start || legacy_;
    (prefix ? sp_ : sp_no_prefix_)->Encode(text, &ids);
    std::vector<int32_t> out;
    out.reserve(ids.size());
    for (int id : ids) {
        if (!is_special(id)) {
            out.push_back(id);
            continue;
        }
        // The sentencepiece model itself knows this special token: spell it out as plain text so
        // that text can never inject a control token.
        const std::string s = special_by_id_.at(id);
        for (const std::string& half : {s.substr(0, 1), s.substr(1)}) {
            std::vector<int> part;
            sp_no_prefix_->Encode(half, &part);
            for (int p : part)
                if (!is_special(p)) out.push_back(p);
                else out.push_back(unk_id_);
        }
    }
    return out;
}

std::vector<int32_t> Tokenizer::encode_prompt(const std::vector<PromptSegment>& segments) const {
    std::vector<int32_t> out;
    if (add_bos_) out.push_back(bos_id_);
    const auto rest = encode_segments(segments, true);
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
}

std::vector<int32_t> Tokenizer::encode_segments(const std::vector<PromptSegment>& segments, bool at_start) const {
    std::vector<int32_t> out;
    std::string run;
    auto flush = [&] {
        if (run.empty()) return;
        const auto ids = encode_text(run, at_start);
        out.insert(out.end(), ids.begin(), ids.end());
        run.clear();
    };
    for (const auto& seg : segments) {
        const bool special = seg.kind == PromptSegment::Kind::special ||
                             (seg.kind == PromptSegment::Kind::marker && special_id(seg.text) >= 0);
        if (!special) {
            run += seg.text;
            continue;
        }
        flush();
        at_start = false;
        const int32_t id = special_id(seg.text);
        out.push_back(id >= 0 ? id : unk_id_);
    }
    flush();
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
        if (run.empty()) return;
        std::string text;
        sp_->Decode(run, &text);
        out += text;
        run.clear();
    };
    for (int32_t id : ids) {
        if (is_special(id) || id == bos_id_) {
            flush();
            if (!skip_special && is_special(id)) out += special_by_id_.at(id);
            continue;
        }
        if (id >= 0 && id < sp_->GetPieceSize()) run.push_back(id);
    }
    flush();
    return out;
}

}  // namespace quire
