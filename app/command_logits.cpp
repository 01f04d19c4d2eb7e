// quire logits: feed token ids through the engine and write float32 logits for chosen positions.
// Diagnostic interface that tests and tools rely on; keep its options stable.
#include <cstdio>
#include <fstream>
#include <map>

#include "cli_args.h"
#include "commands.h"
#include "engine_setup.h"
#include "regular_file.h"
#include "token_file.h"

namespace quire::cli {

namespace {
// "P1,P2,..." with every item a whole number; false names the bad item.
bool parse_positions(const QString& list, std::vector<int64_t>& out, QString& bad) {
    for (const QString& item : list.split(',')) {
        bool ok = false;
        const qint64 p = item.trimmed().toLongLong(&ok);
        if (!ok) {
            bad = item;
            return false;
        }
        out.push_back(p);
    }
    return true;
}
}  // namespace

int logits_command(int argc, char** argv) {
    CommandLine cl("quire logits", "Feed token ids through the engine and write float32 logits for chosen positions.");
    addEngineOptions(cl);
    cl.addText("tokens", "FILE", "The token ids (whitespace-separated).");
    cl.addText("out", "FILE", "Where the logits go (float32, one row per position).");
    cl.addInt("chunk", "N", "Tokens per prefill step; 0: all at once.", 0, 1 << 20, 0);
    cl.addInt("decode-from", "K", "Decode token by token from position K on.", 0, INT64_MAX);
    cl.addText("positions", "last|all|P1,P2,...", "Which positions' logits to write.", "last");
    cl.addText("load-state", "FILE", "Start from this saved state.");
    cl.addText("save-state", "FILE", "Save the state after the tokens.");
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;
    const auto tokens_path = cl.text("tokens");
    const auto out_path = cl.text("out");
    if (!tokens_path || !out_path) return cl.usageError("--tokens FILE and --out FILE are required");
    std::vector<int32_t> tokens;
    std::string error;
    if (!read_token_file(tokens_path->toStdString(), tokens, error)) {
        std::fprintf(stderr, "quire: %s\n", error.c_str());
        return 2;
    }
    const QString pos_arg = *cl.text("positions");
    std::vector<int64_t> listed;
    if (QString bad; pos_arg != "last" && pos_arg != "all" && !parse_positions(pos_arg, listed, bad))
        return cl.usageError("--positions must be last, all or a comma-separated list of positions, not '" + bad + "'");
    EngineSetup s = setup_engine(cl);
    if (!s.engine) return 1;
    Engine& engine = *s.engine;

    std::unique_ptr<Sequence> seq;
    if (auto load = cl.text("load-state")) {
        if (!app::isRegularFile(*load)) {
            std::fprintf(stderr, "quire: %s: not a regular file; only regular files are read\n", qPrintable(*load));
            return 1;
        }
        auto loaded = engine.load_state(load->toStdString(), nullptr);
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
    const int64_t decode_from = cl.integer("decode-from").value_or(end);
    if (decode_from < start || decode_from > end) {
        std::fprintf(stderr, "quire: --decode-from %lld is outside [%lld, %lld]\n", static_cast<long long>(decode_from),
                     static_cast<long long>(start), static_cast<long long>(end));
        return 2;
    }
    std::vector<int64_t> positions;
    if (pos_arg == "last") {
        positions.push_back(end - 1);
    } else if (pos_arg == "all") {
        for (int64_t p = start; p < end; ++p) positions.push_back(p);
    } else {
        for (const int64_t p : listed) {
            if (p < start || p >= end) {
                std::fprintf(stderr, "quire: position %lld is outside the tokens fed [%lld, %lld)\n", static_cast<long long>(p),
                             static_cast<long long>(start), static_cast<long long>(end));
                return 2;
            }
            positions.push_back(p);
        }
    }
    std::map<int64_t, std::vector<float>> rows;
    PrefillRequest req;
    req.tokens = std::span<const int32_t>(tokens.data(), static_cast<size_t>(decode_from - start));
    req.chunk = *cl.integer("chunk");
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
    std::ofstream out(out_path->toStdString(), std::ios::binary);
    for (int64_t p : positions) {
        const auto& r = rows[p];
        out.write(reinterpret_cast<const char*>(r.data()), static_cast<std::streamsize>(r.size() * sizeof(float)));
    }
    out.close();  // the last bytes reach the file (or fail, on a full disk) only here
    if (!out) {
        std::fprintf(stderr, "quire: cannot write %s\n", qPrintable(*out_path));
        return 1;
    }
    if (auto save = cl.text("save-state")) {
        if (Status st = engine.save_state(*seq, save->toStdString()); !st) {
            std::fprintf(stderr, "quire: %s\n", st.to_string().c_str());
            return 1;
        }
    }
    return 0;
}

}  // namespace quire::cli
