#pragma once
// Stop sequences over streamed text: text is released only when it cannot be the beginning of a
// stop sequence, so a client never sees any part of the sequence that ended its answer, even when
// the sequence arrives split over several tokens.

#include <string>
#include <vector>

namespace quire::server {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);
    // Adds generated text; returns the text that is now safe to show. After a stop sequence is
    // found, stopped() is true and nothing more is released.
    std::string push(const std::string& delta);
    // The text held back at the end of generation (when no stop sequence completed).
    std::string flush();
    bool stopped() const { return stopped_; }
    // Everything released so far: the answer up to (not including) the stop sequence.
    const std::string& released() const { return released_; }

private:
    std::vector<std::string> stops_;
    std::string pending_, released_;
    bool stopped_ = false;
};

}  // namespace quire::server
