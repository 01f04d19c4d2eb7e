#include "text_stream.h"

namespace quire {

namespace {
// Length of the longest prefix of s that does not end inside a multi-byte character or in a
// replacement character produced by an incomplete byte sequence.
size_t complete_prefix(const std::string& s) {
    size_t end = s.size();
    static const std::string kReplacement = "\xEF\xBF\xBD";
    while (end >= 3 && s.compare(end - 3, 3, kReplacement) == 0) end -= 3;
    // Step back over a trailing partial sequence.
    size_t i = end;
    int back = 0;
    while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
        --i;
        ++back;
    }
    if (i > 0) {
        const auto lead = static_cast<unsigned char>(s[i - 1]);
        const int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        if (need > back) end = i - 1;
    }
    return end;
}
}  // namespace

std::string TextStream::push(int32_t id) {
    ids_.push_back(id);
    const std::string full = tokenizer_.decode(ids_, true);
    const size_t safe = complete_prefix(full);
    if (safe <= text_.size() || full.compare(0, text_.size(), text_) != 0) return {};
    std::string delta = full.substr(text_.size(), safe - text_.size());
    text_ += delta;
    return delta;
}

std::string TextStream::flush() {
    const std::string full = tokenizer_.decode(ids_, true);
    std::string delta = full.size() > text_.size() && full.compare(0, text_.size(), text_) == 0 ? full.substr(text_.size()) : "";
    text_ += delta;
    return delta;
}

}  // namespace quire
