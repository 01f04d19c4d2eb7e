#include "cpu/paged_rows.h"

#include <algorithm>

namespace quire::cpu {

void PagedRows::append(const float* row) {
    if (size_ % kRowsPerPage == 0) pages_.push_back(std::make_shared<Page>(static_cast<size_t>(kRowsPerPage * width_)));
    float* dst = pages_.back()->data() + (size_ % kRowsPerPage) * width_;
    std::copy(row, row + width_, dst);
    ++size_;
}

PagedRows PagedRows::fork() const {
    PagedRows f = *this;  // shares every page
    if (size_ % kRowsPerPage != 0) f.pages_.back() = std::make_shared<Page>(*pages_.back());  // own partial page
    return f;
}

int64_t PagedRows::shared_pages_with(const PagedRows& other) const {
    int64_t n = 0;
    for (size_t i = 0; i < std::min(pages_.size(), other.pages_.size()); ++i) n += pages_[i] == other.pages_[i];
    return n;
}

}  // namespace quire::cpu
