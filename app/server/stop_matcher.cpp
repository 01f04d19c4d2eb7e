#include "stop_matcher.h"

#include <algorithm>

namespace quire::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

std::string StopMatcher::push(const std::string& delta) {
    if (stopped_) return {};
    pending_ += delta;
    size_t first = std::string::npos;
    for (const std::string& s : stops_) first = std::min(first, pending_.find(s));
    std::string out;
    if (first != std::string::npos) {
        out = pending_.substr(0, first);
        pending_.clear();
        stopped_ = true;
    } else {
        // Hold back the longest end of the text that some stop sequence begins with.
        size_t hold = 0;
        for (const std::string& s : stops_)
            for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n)
                if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
                    hold = n;
                    break;
                }
        out = pending_.substr(0, pending_.size() - hold);
        pending_.erase(0, pending_.size() - hold);
    }
    released_ += out;
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    if (!stopped_) out.swap(pending_);
    released_ += out;
    return out;
}

}  // namespace quire::server
