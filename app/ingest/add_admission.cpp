#include "add_admission.h"

#include <limits>

#include "session/context_builder.h"
#include "session/source_token_cache.h"

namespace quire::app {

AddAdmission::AddAdmission(LibraryDb& db, const LibraryRow& library, const Tokenizer* tokenizer, qint64 contextLimit,
                           qint64 conversationReserve)
    : db_(db), tokenizer_(tokenizer), contextLimit_(contextLimit), conversationReserve_(conversationReserve) {
    if (!tokenizer_) return;
    QVector<ContextSource> held;
    if (auto rows = db_.sources(library.id))
        for (const SourceRow& r : rows.value())
            if (r.status == "ready")
                if (auto text = db_.sourceText(r.id)) held.append({r.id, r.path, text.value()});
    const QString prompt = library.systemPrompt.isEmpty() ? defaultSystemPrompt() : library.systemPrompt;
    DbSourceTokenCache cache(db_, *tokenizer_);  // the ids kept by earlier questions and adds
    if (auto assembled = assembleContext(*tokenizer_, prompt, held, std::numeric_limits<qint64>::max(), 0, &cache))
        libraryTokens_ = static_cast<qint64>(assembled->tokens.size());
}

Status AddAdmission::admit(const IngestedSource& s) {
    lastIds_ = tokenizer_ && s.status == "ready" ? sourceTokens(*tokenizer_, s.text) : std::vector<int32_t>();
    const auto tokens = static_cast<qint64>(lastIds_.size());
    // A source that alone does not fit the context can never be asked about.
    if (tokens + conversationReserve_ > contextLimit_)
        return Status(ErrorCode::out_of_range, QString("%1 alone needs %2 tokens, more than the context limit of %3 less %4 for the "
                                                       "conversation; not added")
                                                   .arg(s.path).arg(tokens).arg(contextLimit_).arg(conversationReserve_)
                                                   .toStdString());
    if (libraryTokens_ + tokens + conversationReserve_ > contextLimit_)
        return Status(ErrorCode::out_of_range, QString("%1 needs %2 tokens; with the library's %3 that is more than the context limit "
                                                       "of %4 less %5 for the conversation; not added (remove a source first)")
                                                   .arg(s.path).arg(tokens).arg(libraryTokens_).arg(contextLimit_).arg(conversationReserve_)
                                                   .toStdString());
    return Status::ok();
}

void AddAdmission::stored(qint64 sourceId, const IngestedSource& s) {
    libraryTokens_ += static_cast<qint64>(lastIds_.size());
    if (tokenizer_ && !lastIds_.empty()) DbSourceTokenCache(db_, *tokenizer_).store({sourceId, s.path, s.text}, lastIds_);
    lastIds_.clear();
}

}  // namespace quire::app
