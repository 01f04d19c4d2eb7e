// quire generate: stream an answer to a prompt (raw text, token ids, or a ChatML chat turn).
#include <cstdio>
#include <fstream>

#include "chat_template.h"
#include "cli_args.h"
#include "commands.h"
#include "engine_setup.h"
#include "generator.h"

namespace quire::cli {

namespace {
const char* kUsage =
    "usage: quire generate --model DIR (--prompt TEXT | --tokens FILE) [--chat] [--system TEXT] [--no-think]\n"
    "       [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--repetition-penalty R]\n"
    "       [--seed S] [--chunk N]\n";
}

int generate_command(int argc, char** argv) {
    Args args(argc, argv, 2, {"--chat", "--no-think"});
    const auto prompt_text = args.value("--prompt");
    const auto tokens_file = args.value("--tokens");
    if (!args.ok() || (!prompt_text == !tokens_file)) {
        std::fprintf(stderr, "%s%s", kUsage, kEngineOptionsUsage);
        return 2;
    }
    EngineSetup s = setup_engine(args);
    if (!s.engine) return 1;
    const Tokenizer* tok = s.model->tokenizer();
    if (!tok) {
        std::fprintf(stderr, "quire: the model folder has no tokenizer.model\n");
        return 1;
    }
    std::vector<int32_t> prompt;
    if (tokens_file) {
        std::ifstream in(*tokens_file);
        long long id;
        while (in >> id) prompt.push_back(static_cast<int32_t>(id));
    } else if (args.flag("--chat")) {
        std::vector<ChatMessage> messages;
        if (auto sys = args.value("--system")) messages.push_back({ChatRole::system, *sys});
        messages.push_back({ChatRole::user, *prompt_text});
        ChatTemplateOptions o;
        o.thinking = !args.flag("--no-think");
        prompt = tok->encode_prompt(render_chat(messages, o));
    } else {
        if (tok->add_bos()) prompt.push_back(tok->bos_id());
        const auto ids = tok->encode_text(*prompt_text);
        prompt.insert(prompt.end(), ids.begin(), ids.end());
    }
    GenerateOptions g;
    auto num = [&](const char* name, double fallback) {
        const auto v = args.value(name);
        return v ? std::atof(v->c_str()) : fallback;
    };
    g.max_tokens = static_cast<int64_t>(num("--max-tokens", 256));
    g.sampling.temperature = static_cast<float>(num("--temperature", 0.0));
    g.sampling.top_p = static_cast<float>(num("--top-p", 1.0));
    g.sampling.top_k = static_cast<int64_t>(num("--top-k", 0));
    g.sampling.min_p = static_cast<float>(num("--min-p", 0.0));
    g.sampling.repetition_penalty = static_cast<float>(num("--repetition-penalty", 1.0));
    g.sampling.seed = static_cast<uint64_t>(num("--seed", 0));
    g.prefill_chunk = static_cast<int64_t>(num("--chunk", 2048));
    g.on_text = [](const std::string& delta) {
        std::fwrite(delta.data(), 1, delta.size(), stdout);
        std::fflush(stdout);
    };
    auto seq = s.engine->new_sequence();
    auto r = generate(*s.engine, *seq, prompt, g);
    if (!r) {
        std::fprintf(stderr, "\nquire: %s\n", r.status().to_string().c_str());
        return 1;
    }
    std::printf("\n");
    std::fprintf(stderr, "[%zu prompt tokens, %zu generated, stopped by %s; first token %.3f s, %.1f tokens/s]\n",
                 prompt.size(), r->tokens.size(), r->stop_reason.c_str(), r->first_token_seconds, r->tokens_per_second);
    return 0;
}

}  // namespace quire::cli
