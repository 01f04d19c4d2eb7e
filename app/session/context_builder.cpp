#include "context_builder.h"

#include <algorithm>

#include "chat_template.h"
#include "citations.h"

namespace quire::app {

QString defaultSystemPrompt() {
    return "You are Quire, an assistant that answers questions about the documents and code below. "
           "Answer from them and say so when they do not contain the answer.";
}

std::vector<int32_t> sourceTokens(const Tokenizer& tok, const QString& text) { return tok.encode_text((text + "\n").toStdString(), false); }

Result<AssembledContext> assembleContext(const Tokenizer& tok, const QString& systemPrompt, const QVector<ContextSource>& sources,
                                         qint64 limit, qint64 reserve, SourceTokenCache* cache) {
    using K = PromptSegment::Kind;
    AssembledContext ctx;
    if (tok.add_bos()) ctx.tokens.push_back(tok.bos_id());
    const auto head = tok.encode_segments({{K::special, "<|im_start|>"}, {K::text, "system\n" + (systemPrompt + "\n" + citationInstruction()).toStdString() + "\n\n"}}, true);
    ctx.tokens.insert(ctx.tokens.end(), head.begin(), head.end());
    ctx.pieces.append({0, "system prompt", static_cast<qint64>(ctx.tokens.size())});
    for (const ContextSource& s : sources) {
        std::optional<std::vector<int32_t>> cached = cache ? cache->find(s) : std::nullopt;
        if (!cached) {
            cached = sourceTokens(tok, s.text);
            if (cache) cache->store(s, *cached);
        }
        const std::vector<int32_t>& ids = *cached;
        ctx.tokens.insert(ctx.tokens.end(), ids.begin(), ids.end());
        ctx.pieces.append({s.id, s.path, static_cast<qint64>(ids.size())});
    }
    const auto total = static_cast<qint64>(ctx.tokens.size());
    if (total + reserve > limit) {
        QVector<ContextPiece> biggest = ctx.pieces;
        std::sort(biggest.begin(), biggest.end(), [](const auto& a, const auto& b) { return a.tokens > b.tokens; });
        QString names;
        for (qsizetype i = 0; i < std::min<qsizetype>(3, biggest.size()); ++i)
            names += QString("%1%2 (%3 tokens)").arg(i ? ", " : "", biggest[i].label).arg(biggest[i].tokens);
        return Status(ErrorCode::out_of_range,
                      QString("the library needs %1 tokens plus %2 for the conversation, more than the context limit of %3; "
                              "largest sources: %4")
                          .arg(total).arg(reserve).arg(limit).arg(names).toStdString());
    }
    return ctx;
}

std::vector<int32_t> questionTokens(const Tokenizer& tok, const QString& question, bool thinking) {
    using K = PromptSegment::Kind;
    std::vector<PromptSegment> seg = {{K::special, "<|im_end|>"}, {K::text, "\n"}};
    ChatTemplateOptions o;
    o.thinking = thinking;
    const auto turn = render_chat({{ChatRole::user, question.toStdString()}}, o);
    seg.insert(seg.end(), turn.begin(), turn.end());
    return tok.encode_segments(seg, false);
}

}  // namespace quire::app
