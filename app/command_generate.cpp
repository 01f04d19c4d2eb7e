// quire generate: stream an answer to a prompt (raw text, token ids, or a ChatML chat turn).
#include <cstdio>
#include <cstdint>

#include "chat_template.h"
#include "cli_args.h"
#include "token_file.h"
#include "commands.h"
#include "engine_setup.h"
#include "generator.h"

namespace quire::cli {

int generate_command(int argc, char** argv) {
    CommandLine cl("quire generate", "Stream an answer to a prompt (raw text, token ids, or a ChatML chat turn).");
    addEngineOptions(cl);
    cl.addText("prompt", "TEXT", "The prompt.");
    cl.addText("tokens", "FILE", "The prompt as token ids (whitespace-separated).");
    cl.addFlag("chat", "Wrap the prompt in a ChatML user turn.");
    cl.addText("system", "TEXT", "With --chat: a system turn.");
    cl.addFlag("no-think", "With --chat: no thinking block.");
    cl.addInt("max-tokens", "N", "Most tokens generated.", 1, 1 << 20, 256);
    cl.addFloat("temperature", "T", "Sampling temperature; 0: greedy.", 0, 10, 0);
    cl.addFloat("top-p", "P", "Nucleus sampling threshold; 1: off.", 0, 1, 1);
    cl.addInt("top-k", "K", "Keep the K likeliest tokens; 0: off.", 0, 1 << 20, 0);
    cl.addFloat("min-p", "P", "Keep tokens at least P times as likely as the likeliest; 0: off.", 0, 1, 0);
    cl.addFloat("repetition-penalty", "R", "Penalty on repeated tokens; 1: off.", 0.01, 100, 1);
    cl.addInt("seed", "S", "Sampling seed.", 0, INT64_MAX, 0);
    cl.addInt("chunk", "N", "Tokens per prefill step.", 1, 1 << 20, 2048);
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;
    const auto prompt_text = cl.text("prompt");
    const auto tokens_file = cl.text("tokens");
    if (!prompt_text == !tokens_file) return cl.usageError("give the prompt with either --prompt or --tokens");
    EngineSetup s = setup_engine(cl);
    if (!s.engine) return 1;
    const Tokenizer* tok = s.model->tokenizer();
    if (!tok) {
        std::fprintf(stderr, "quire: the model folder has no tokenizer.model\n");
        return 1;
    }
    std::vector<int32_t> prompt;
    if (tokens_file) {
        std::string error;
        if (!read_token_file(tokens_file->toStdString(), prompt, error)) {
            std::fprintf(stderr, "quire: %s\n", error.c_str());
            return 2;
        }
    } else if (cl.flag("chat")) {
        std::vector<ChatMessage> messages;
        if (auto sys = cl.text("system")) messages.push_back({ChatRole::system, sys->toStdString()});
        messages.push_back({ChatRole::user, prompt_text->toStdString()});
        ChatTemplateOptions o;
        o.thinking = !cl.flag("no-think");
        prompt = tok->encode_prompt(render_chat(messages, o));
    } else {
        if (tok->add_bos()) prompt.push_back(tok->bos_id());
        const auto ids = tok->encode_text(prompt_text->toStdString());
        prompt.insert(prompt.end(), ids.begin(), ids.end());
    }
    GenerateOptions g;
    g.max_tokens = *cl.integer("max-tokens");
    g.sampling.temperature = static_cast<float>(*cl.real("temperature"));
    g.sampling.top_p = static_cast<float>(*cl.real("top-p"));
    g.sampling.top_k = *cl.integer("top-k");
    g.sampling.min_p = static_cast<float>(*cl.real("min-p"));
    g.sampling.repetition_penalty = static_cast<float>(*cl.real("repetition-penalty"));
    g.sampling.seed = static_cast<uint64_t>(*cl.integer("seed"));
    g.prefill_chunk = *cl.integer("chunk");
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
