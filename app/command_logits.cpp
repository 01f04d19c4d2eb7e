// quire logits: feed token ids through the engine and write float32 logits for chosen positions.
// Diagnostic interface that tests and tools rely on; keep its options stable.
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_args.h"
#include "commands.h"
#include "engine_setup.h"

namespace quire::cli {

namespace {
const char* kUsage =
    "usage: quire logits --model DIR --tokens FILE --out FILE [--chunk N] [--decode-from K]\n"
    "       [--positions last|all|P1,P2,...] [--load-state FILE] [--save-state FILE]\n";

bool read_tokens(const std::string& path, std::vector<int32_t>& out, std::string& error) {
    std::ifstream in(path);
    if (!in) {
        error = "cannot open token file " + path;
        return false;
    }
    std::string word;
    while (in >> word) {
        char* end = nullptr;
        const long long v = std::strtoll(word.c_str(), &end, 10);
        if (*end != '\0' || v < 0 || v > 0x7FFFFFFF) {
            error = "token file " + path + ": '" + word + "' is not a token id";
            return false;
        }
        out.push_back(static_cast<int32_t>(v));
    }
    return true;
}
}  // namespace

int logits_command(int argc, char** argv) {
    Args args(argc, argv, 2, {});
    const auto tokens_path = args.value("--tokens");
    const auto out_path = args.value("--out");
    if (!args.ok() || !tokens_path || !out_path) {
        std::fprintf(stderr, "%s%s", kUsage, kEngineOptionsUsage);
        return 2;
    }
    std::vector<int32_t> tokens;
    std::string error;
    if (!read_tokens(*tokens_path, tokens, error)) {
        std::fprintf(stderr, "quire: %s\n", error.c_str());
        return 2;
    }
    EngineSetup s = setup_engine(args);
    if (!s.engine) return 1;
    Engine& engine = *s.engine;

    std::unique_ptr<Sequence> seq;
    if (auto load = args.value("--load-state")) {
        auto loaded = engine.load_state(*load, nullptr);
        if (!loaded) {
            std::fprintf(stderr, "quire: %s\n", loaded.status().to_string().c_str());
            return 1;
        }
        seq = std::move(loaded.value());
    } else {
        seq = engine.new_sequence();
    }
    const int64_t start = seq->length();
    const auto n = static_cast<int64_t>(tokens.size());
    if (n == 0) {
        std::fprintf(stderr, "quire: the token file is empty\n");
        return 2;
    }
    const int64_t end = start + n;
    const int64_t decode_from = args.value("--decode-from") ? std::stoll(*args.value("--decode-from")) : end;
    if (decode_from < start || decode_from > end) {
        std::fprintf(stderr, "quire: --decode-from %lld is outside [%lld, %lld]\n", static_cast<long long>(decode_from),
                     static_cast<long long>(start), static_cast<long long>(end));
        return 2;
    }
    std::vector<int64_t> positions;
    const std::string pos_arg = args.value("--positions").value_or("last");
    if (pos_arg == "last") {
        positions.push_back(end - 1);
    } else if (pos_arg == "all") {
        for (int64_t p = start; p < end; ++p) positions.push_back(p);
    } else {
        std::stringstream ss(pos_arg);
        for (std::string item; std::getline(ss, item, ',');) {
            const long long p = std::atoll(item.c_str());
            if (p < start || p >= end) {
                std::fprintf(stderr, "quire: position %lld is outside the tokens fed [%lld, %lld)\n", p,
                             static_cast<long long>(start), static_cast<long long>(end));
                return 2;
            }
            positions.push_back(p);
        }
    }
    std::map<int64_t, std::vector<float>> rows;
    PrefillRequest req;
    req.tokens = std::span<const int32_t>(tokens.data(), static_cast<size_t>(decode_from - start));
    req.chunk = args.value("--chunk") ? std::stoll(*args.value("--chunk")) : 0;
    for (int64_t p : positions)
        if (p < decode_from) req.logits_positions.push_back(p);
    if (!req.tokens.empty()) {
        std::vector<std::vector<float>> got;
        if (Status st = engine.prefill(*seq, req, &got); !st) {
            std::fprintf(stderr, "quire: %s\n", st.to_string().c_str());
            return 1;
        }
        for (size_t i = 0; i < got.size(); ++i) rows[req.logits_positions[i]] = std::move(got[i]);
    }
    for (int64_t p = decode_from; p < end; ++p) {
        std::vector<float> l;
        if (Status st = engine.decode(*seq, tokens[static_cast<size_t>(p - start)], &l); !st) {
            std::fprintf(stderr, "quire: %s\n", st.to_string().c_str());
            return 1;
        }
        rows[p] = std::move(l);
    }
    std::ofstream out(*out_path, std::ios::binary);
    for (int64_t p : positions) {
        const auto& r = rows[p];
        out.write(reinterpret_cast<const char*>(r.data()), static_cast<std::streamsize>(r.size() * sizeof(float)));
    }
    if (!out) {
        std::fprintf(stderr, "quire: cannot write %s\n", out_path->c_str());
        return 1;
    }
    if (auto save = args.value("--save-state")) {
        if (Status st = engine.save_state(*seq, *save); !st) {
            std::fprintf(stderr, "quire: %s\n", st.to_string().c_str());
            return 1;
        }
    }
    return 0;
}

}  // namespace quire::cli
