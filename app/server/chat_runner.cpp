#include "chat_runner.h"

#include <QFileInfo>

#include <algorithm>
#include <random>

#include "session/context_builder.h"
#include "stop_matcher.h"

namespace quire::server {

using nlohmann::json;

namespace {

bool isPrefixOf(const std::vector<int32_t>& head, const std::vector<int32_t>& all) {
    return head.size() <= all.size() && std::equal(head.begin(), head.end(), all.begin());
}

// The messages as ChatML after `prefix`. A library's prefix ends inside its open system turn, which
// the first message closes; the plain model starts from BOS. Earlier answers are rendered as the
// model produced them (after the empty think block when thinking is off), so a follow-up's tokens
// extend the previous request's and its state is reused.
struct Prompt {
    std::vector<int32_t> tokens;
    size_t systemEnd = 0;  // tokens up to the end of the leading system messages (0: none)
};

Prompt promptTokens(const Tokenizer& tok, const std::vector<int32_t>& prefix, bool openTurn, const ChatRequest& r) {
    using K = PromptSegment::Kind;
    std::vector<PromptSegment> seg;
    if (openTurn) seg = {{K::special, "<|im_end|>"}, {K::text, "\n"}};
    size_t systemSegments = 0;
    bool leading = true;
    for (const ChatMessage& m : r.messages) {
        leading = leading && m.role == ChatRole::system;
        seg.push_back({K::special, "<|im_start|>"});
        seg.push_back({K::text, std::string(chat_role_name(m.role)) + "\n"});
        if (m.role == ChatRole::assistant && !r.thinking && m.content.rfind("<think>", 0) != 0)
            seg.insert(seg.end(), {{K::marker, "<think>"}, {K::text, "\n\n"}, {K::marker, "</think>"}, {K::text, "\n\n"}});
        seg.push_back({K::text, m.content});
        seg.push_back({K::special, "<|im_end|>"});
        if (leading) systemSegments = seg.size();  // ends on a special token: its encoding is a prefix of the whole
        seg.push_back({K::text, "\n"});
    }
    ChatTemplateOptions o;
    o.thinking = r.thinking;
    const auto generationPrompt = render_chat({}, o);
    seg.insert(seg.end(), generationPrompt.begin(), generationPrompt.end());
    const bool atStart = prefix.empty() || !openTurn;
    Prompt p;
    p.tokens = prefix;
    const auto conv = tok.encode_segments(seg, atStart);
    p.tokens.insert(p.tokens.end(), conv.begin(), conv.end());
    if (systemSegments)
        p.systemEnd = prefix.size() + tok.encode_segments({seg.begin(), seg.begin() + static_cast<std::ptrdiff_t>(systemSegments)}, atStart).size();
    return p;
}

void fail(Job& job, ApiError error) {
    JobEvent e;
    e.kind = JobEvent::Kind::failed;
    e.error = std::move(error);
    job.post(std::move(e));
}

}  // namespace

ChatRunner::ChatRunner(app::AppContext& context, app::SessionOptions options, size_t cachedStates)
    : ctx_(context), options_(std::move(options)), cacheLimit_(cachedStates) {
    session_ = std::make_unique<app::SessionService>(*ctx_.db, *ctx_.engine, options_);
    publishCounters();
}

ChatRunner::~ChatRunner() = default;

std::string ChatRunner::plainModelId() const { return QFileInfo(ctx_.modelDir).fileName().toStdString(); }

json ChatRunner::counters() const {
    std::lock_guard lock(countersMutex_);
    return {{"prefilled_tokens", published_.prefilled_tokens}, {"decoded_tokens", published_.decoded_tokens},
            {"forward_calls", published_.forward_calls}};
}

void ChatRunner::publishCounters() {
    std::lock_guard lock(countersMutex_);
    published_ = ctx_.engine->counters();
}

const ChatRunner::CachedState* ChatRunner::longestCachedPrefix(const std::vector<int32_t>& tokens) const {
    const CachedState* best = nullptr;
    for (const CachedState& c : cache_)
        if (c.tokens.size() < tokens.size() && isPrefixOf(c.tokens, tokens) && (!best || c.tokens.size() > best->tokens.size()))
            best = &c;
    return best;
}

void ChatRunner::remember(std::unique_ptr<Sequence> seq) {
    if (!seq || cacheLimit_ == 0) return;
    for (CachedState& c : cache_)
        if (c.tokens == seq->tokens()) {
            c.lastUse = ++useClock_;
            return;
        }
    if (cache_.size() >= cacheLimit_) {
        auto oldest = std::min_element(cache_.begin(), cache_.end(), [](const auto& a, const auto& b) { return a.lastUse < b.lastUse; });
        cache_.erase(oldest);
    }
    cache_.push_back({seq->tokens(), std::move(seq), ++useClock_});
}

void ChatRunner::run(Job& job) {
    if (job.cancel) return;  // its client left while it waited
    answer(job);
    publishCounters();
}

void ChatRunner::answer(Job& job) {
    const ChatRequest& r = job.request;
    Engine& engine = *ctx_.engine;
    const Tokenizer* tok = engine.model().tokenizer();
    if (!tok) return fail(job, internalError("the model has no tokenizer"));
    const EngineCounters before = engine.counters();

    // 1. What the answer starts from: the library's prefix state, or nothing.
    const Sequence* base = nullptr;
    std::vector<int32_t> prefix;
    app::ReadResult read;
    if (r.model.rfind(kLibraryModelPrefix, 0) == 0) {
        const QString name = QString::fromStdString(r.model.substr(kLibraryModelPrefix.size()));
        auto lib = ctx_.db->library(name);
        if (!lib) return fail(job, internalError(lib.status().message()));
        if (!lib.value()) return fail(job, notFound("there is no library named '" + name.toStdString() + "' (GET /v1/models lists them)", "model"));
        auto state = session_->prefixState(*lib.value(), {}, &job.cancel, read);
        if (!state) {
            if (state.status().code() == ErrorCode::cancelled) return;
            if (state.status().code() == ErrorCode::out_of_range) return fail(job, tooLarge(state.status().message(), "context_length_exceeded"));
            return fail(job, internalError("cannot read library '" + name.toStdString() + "': " + state.status().message()));
        }
        base = state.value();
        prefix = base->tokens();
    } else if (r.model != plainModelId()) {
        return fail(job, notFound("the model '" + r.model + "' does not exist; GET /v1/models lists the models (" + plainModelId() +
                                      " and library/<name>)", "model"));
    } else if (tok->add_bos()) {
        prefix = {tok->bos_id()};
    }
    const Prompt built = promptTokens(*tok, prefix, base != nullptr, r);
    const std::vector<int32_t>& prompt = built.tokens;

    // 2. Over the context? Refused with the numbers.
    const auto promptCount = static_cast<int64_t>(prompt.size());
    const int64_t limit = options_.contextLimit;
    if (promptCount + (r.maxTokensGiven ? r.maxTokens : 1) > limit)
        return fail(job, tooLarge("this request needs " + std::to_string(promptCount) + " prompt tokens" +
                                      (r.maxTokensGiven ? " + " + std::to_string(r.maxTokens) + " for the answer" : std::string()) +
                                      ", more than the context of " + std::to_string(limit) + " tokens",
                                  "context_length_exceeded"));

    // 3. Start from the longest state whose tokens the prompt extends.
    const CachedState* cached = longestCachedPrefix(prompt);
    std::unique_ptr<Sequence> seq;
    if (cached && (!base || cached->tokens.size() > prefix.size())) seq = cached->seq->fork();
    else if (base) seq = base->fork();
    else seq = engine.new_sequence();
    if (!seq) return fail(job, unavailable("no memory left for another conversation state; try again", "out_of_memory"));
    const int64_t reused = seq->length();

    JobEvent started;
    started.kind = JobEvent::Kind::started;
    started.info = {{"prompt_tokens", promptCount}, {"cached_tokens", reused}};
    job.post(std::move(started));

    // 4. Compute the prompt but its last token, keeping the states after the leading system messages
    //    (a client's fixed context, as the remote backend sends a library) and before the last token
    //    for later requests that share them; then generate.
    std::vector<size_t> keepPoints;
    if (built.systemEnd > static_cast<size_t>(reused) && built.systemEnd + 1 < prompt.size()) keepPoints.push_back(built.systemEnd);
    if (prompt.size() > static_cast<size_t>(reused) + 1) keepPoints.push_back(prompt.size() - 1);
    for (const size_t point : keepPoints) {
        const auto have = static_cast<size_t>(seq->length());
        PrefillRequest pre;
        pre.tokens = std::span<const int32_t>(prompt.data() + have, point - have);
        pre.chunk = options_.chunk;
        pre.cancel = &job.cancel;
        if (Status st = engine.prefill(*seq, pre, nullptr); !st) {
            if (st.code() != ErrorCode::cancelled) fail(job, internalError(st.message()));
            return;
        }
        remember(seq->fork());
    }
    const std::span<const int32_t> rest(prompt.data() + seq->length(), prompt.size() - static_cast<size_t>(seq->length()));
    StopMatcher stops(r.stop);
    GenerateOptions g;
    g.max_tokens = std::min(r.maxTokens, limit - promptCount);
    g.sampling.temperature = r.temperature;
    g.sampling.top_p = r.topP;
    g.sampling.seed = r.seed ? *r.seed : std::random_device{}();
    g.prefill_chunk = options_.chunk;
    if (r.ignoreEos) g.stop_ids = {-1};  // no token has this id: only max_tokens, a stop sequence or a cancel end it
    g.cancel = &job.cancel;
    g.on_text = [&](const std::string& delta) {
        publishCounters();
        if (std::string out = stops.push(delta); !out.empty()) {
            JobEvent e;
            e.kind = JobEvent::Kind::text;
            e.text = std::move(out);
            job.post(std::move(e));
        }
        if (stops.stopped()) job.cancel = true;  // ends the generation after this step
    };
    auto result = generate(engine, *seq, rest, g);
    if (!result) return fail(job, internalError(result.status().message()));
    if (result->stop_reason == "cancelled" && !stops.stopped()) return;  // the client went away
    if (std::string tail = stops.flush(); !tail.empty()) {
        JobEvent e;
        e.kind = JobEvent::Kind::text;
        e.text = std::move(tail);
        job.post(std::move(e));
    }
    const auto completion = static_cast<int64_t>(result->tokens.size());
    if (!stops.stopped()) remember(std::move(seq));
    const EngineCounters after = engine.counters();
    JobEvent done;
    done.kind = JobEvent::Kind::finished;
    done.info = {{"finish_reason", result->stop_reason == "max tokens" && !stops.stopped() ? "length" : "stop"},
                 {"text", stops.released()},
                 {"usage",
                  {{"prompt_tokens", promptCount},
                   {"completion_tokens", completion},
                   {"total_tokens", promptCount + completion},
                   {"prompt_tokens_details", {{"cached_tokens", reused}}}}},
                 {"quire",
                  {{"context_tokens", static_cast<int64_t>(prefix.size())},
                   {"reused_library_state", base != nullptr && read.prefilledTokens == 0},
                   {"prefilled_tokens", after.prefilled_tokens - before.prefilled_tokens},
                   {"decoded_tokens", after.decoded_tokens - before.decoded_tokens},
                   {"first_token_seconds", result->first_token_seconds},
                   {"tokens_per_second", result->tokens_per_second}}}};
    job.post(std::move(done));
}

}  // namespace quire::server
