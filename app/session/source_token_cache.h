#pragma once
// Each source's token ids kept in the library database (schema 5's source_tokens), under a key of
// the tokenizer's fingerprint and a hash of the source's text: a question in a new process, an add
// or `library show` then reads ids instead of encoding the whole library again (seconds at 1M
// tokens). Any other tokenizer or text misses and is encoded, and its ids replace the kept ones.

#include "library/library_db.h"
#include "session/context_builder.h"

namespace quire::app {

class DbSourceTokenCache : public SourceTokenCache {
public:
    DbSourceTokenCache(LibraryDb& db, const Tokenizer& tokenizer) : db_(db), tokenizer_(tokenizer) {}
    std::optional<std::vector<int32_t>> find(const ContextSource& source) override;
    // Best effort: a read-only library or a full disk keeps nothing, and that changes no answer.
    void store(const ContextSource& source, const std::vector<int32_t>& ids) override;
    // Sources encoded (not found) since this cache was made: what the tests count.
    qint64 misses() const { return misses_; }

private:
    QString key(const ContextSource& source) const;
    LibraryDb& db_;
    const Tokenizer& tokenizer_;
    qint64 misses_ = 0;
};

}  // namespace quire::app
