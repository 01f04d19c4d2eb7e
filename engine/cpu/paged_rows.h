#pragma once
// An append-only array of fixed-width fp32 rows stored in pages of 64 rows (one InfLLM-v2 block of
// K or V per page). Full pages are immutable and shared between forks by reference count; fork()
// copies only the partial last page.

#include <cstdint>
#include <memory>
#include <vector>

namespace quire::cpu {

class PagedRows {
public:
    static constexpr int64_t kRowsPerPage = 64;

    PagedRows() = default;
    explicit PagedRows(int64_t row_width) : width_(row_width) {}

    int64_t width() const { return width_; }
    int64_t size() const { return size_; }
    const float* row(int64_t i) const { return pages_[static_cast<size_t>(i / kRowsPerPage)]->data() + (i % kRowsPerPage) * width_; }
    // Pointer to `kRowsPerPage` consecutive rows starting at page p (the last page may be partial).
    const float* page(int64_t p) const { return pages_[static_cast<size_t>(p)]->data(); }
    int64_t page_count() const { return static_cast<int64_t>(pages_.size()); }

    void append(const float* row);
    PagedRows fork() const;
    // How many pages this object shares with another (for tests of fork sharing).
    int64_t shared_pages_with(const PagedRows& other) const;
    // Drops every row (used when loading a state).
    void clear() { pages_.clear(); size_ = 0; }

private:
    using Page = std::vector<float>;
    int64_t width_ = 0;
    int64_t size_ = 0;
    std::vector<std::shared_ptr<Page>> pages_;
};

}  // namespace quire::cpu
