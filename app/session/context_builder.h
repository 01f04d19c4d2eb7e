#pragma once
// Assembles a library into one token sequence: BOS, the opening of the system turn with the system
// prompt and the fixed citation instruction (citations.h), then every ready source in library order under its header. Each piece is encoded on its
// own, so adding a source at the end appends tokens without changing any earlier token — which is
// what lets a saved prefix state be extended instead of recomputed. The system turn is left open:
// a question closes it (see question_tokens).

#include <QString>
#include <QVector>

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

// Refuses (ErrorCode::out_of_range) a context that leaves fewer than `reserve` tokens of `limit`,
// naming the largest sources.
Result<AssembledContext> assembleContext(const Tokenizer& tokenizer, const QString& systemPrompt,
                                         const QVector<ContextSource>& sources, qint64 limit, qint64 reserve);

// The tokens that close the context (or the previous answer) and ask a question:
//   <|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n[empty think block]
std::vector<int32_t> questionTokens(const Tokenizer& tokenizer, const QString& question, bool thinking);

QString defaultSystemPrompt();

}  // namespace quire::app
