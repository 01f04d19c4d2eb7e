#include "session/source_token_cache.h"

#include <cstring>

#include "hash.h"

namespace quire::app {

QString DbSourceTokenCache::key(const ContextSource& source) const {
    const QByteArray text = source.text.toUtf8();
    return QString::fromStdString(hash_hex(tokenizer_.fingerprint()) + ":" + hash_hex(hash64(text.constData(), text.size())));
}

std::optional<std::vector<int32_t>> DbSourceTokenCache::find(const ContextSource& source) {
    auto stored = db_.sourceTokenIds(source.id, key(source));
    if (stored && stored.value() && stored.value()->size() % 4 == 0) {
        std::vector<int32_t> ids(static_cast<size_t>(stored.value()->size() / 4));
        if (!ids.empty()) std::memcpy(ids.data(), stored.value()->constData(), ids.size() * 4);
        // Ids the model cannot embed would come from a damaged row: encoded again instead.
        bool valid = true;
        for (int32_t id : ids) valid = valid && id >= 0 && id < tokenizer_.vocab_size();
        if (valid) return ids;
    }
    ++misses_;
    return std::nullopt;
}

void DbSourceTokenCache::store(const ContextSource& source, const std::vector<int32_t>& ids) {
    if (db_.readOnly() || source.id <= 0) return;
    const QByteArray bytes(reinterpret_cast<const char*>(ids.data()), static_cast<qsizetype>(ids.size() * 4));
    (void)db_.setSourceTokenIds(source.id, key(source), bytes);
}

}  // namespace quire::app
