#pragma once
// Assembles a library into one token sequence: BOS, the opening of the system turn with the system
// prompt and the fixed citation instruction (citations.h), then every ready source in library order under its header. Each piece is encoded on its
// own, so adding a source at the end appends tokens without changing any earlier token — which is
// what lets a saved prefix state be extended instead of recomputed. The system turn is left open:
// a question closes it (see question_tokens).

#include <QString>
#include <QVector>

#include <optional>
#include <vector>

#include "status.h"
#include "tokenizer.h"

namespace quire::app {

struct ContextSource {
    qint64 id = 0;
    QString path;
    QString text;
};

struct ContextPiece {
    qint64 sourceId = 0;  // 0 for the system prompt
    QString label;
    qint64 tokens = 0;
};

struct AssembledContext {
    std::vector<int32_t> tokens;
    QVector<ContextPiece> pieces;
};

// Token ids of sources encoded before (source_token_cache.h): find() gives them for a source whose
// text and tokenizer are unchanged, store() keeps those just encoded.
class SourceTokenCache {
public:
    virtual ~SourceTokenCache() = default;
    virtual std::optional<std::vector<int32_t>> find(const ContextSource& source) = 0;
    virtual void store(const ContextSource& source, const std::vector<int32_t>& ids) = 0;
};

// The ids a source contributes to the context (its text and a line break, encoded on their own).
std::vector<int32_t> sourceTokens(const Tokenizer& tokenizer, const QString& text);

// Refuses (ErrorCode::out_of_range) a context that leaves fewer than `reserve` tokens of `limit`,
// naming the largest sources. With a cache, sources encoded before are not encoded again.
Result<AssembledContext> assembleContext(const Tokenizer& tokenizer, const QString& systemPrompt,
                                         const QVector<ContextSource>& sources, qint64 limit, qint64 reserve,
                                         SourceTokenCache* cache = nullptr);

// The tokens that close the context (or the previous answer) and ask a question:
//   <|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n[empty think block]
std::vector<int32_t> questionTokens(const Tokenizer& tokenizer, const QString& question, bool thinking);

QString defaultSystemPrompt();

}  // namespace quire::app
