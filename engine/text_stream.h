#pragma once
// Turns generated token ids into text deltas that only ever contain whole UTF-8 characters:
// a character split over several byte-fallback tokens is held back until it is complete.

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer.h"

namespace quire {

class TextStream {
public:
    explicit TextStream(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
    // Adds a token and returns the text that became final (possibly empty).
    std::string push(int32_t id);
    // All text so far, including anything held back (used at the end of a generation).
    std::string flush();
    const std::string& text() const { return text_; }

private:
    const Tokenizer& tokenizer_;
    std::vector<int32_t> ids_;
    std::string text_;  // emitted so far
};

}  // namespace quire
