// quire-make-tiny-model: writes a deterministic tiny MiniCPM-SALA folder for tests and demos.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tiny_model.h"

namespace {
void usage() {
    std::fprintf(stderr,
                 "usage: quire-make-tiny-model --out DIR --corpus DIR [--layers N] [--sparse-layers 0,3]\n"
                 "       [--hidden H] [--intermediate I] [--heads N] [--kv-heads N] [--head-dim 64|128]\n"
                 "       [--lightning-heads N] [--lightning-head-dim D] [--vocab V] [--shards N] [--seed S]\n"
                 "       [--dense-len N] [--legacy-tokenizer] [--dtype bfloat16|float16] [--fp16-values]\n"
                 "       [--gptq-bits 4|8 [--gptq-group-size N] [--gptq-asym] [--gptq-desc-act] [--gptq-v2]\n"
                 "        [--gptq-dynamic sala|mixed] [--gptq-dequantized-twin]]\n");
}
}  // namespace

int main(int argc, char** argv) {
    quire::tools::TinyModelOptions o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage();
                std::exit(2);
            }
            return argv[++i];
        };
        auto num = [&]() { return std::stoll(next()); };
        if (a == "--out") o.out_dir = next();
        else if (a == "--corpus") o.corpus_dir = next();
        else if (a == "--layers") o.layers = num();
        else if (a == "--hidden") o.hidden = num();
        else if (a == "--intermediate") o.intermediate = num();
        else if (a == "--heads") o.heads = num();
        else if (a == "--kv-heads") o.kv_heads = num();
        else if (a == "--head-dim") o.head_dim = num();
        else if (a == "--lightning-heads") o.lightning_heads = num();
        else if (a == "--lightning-head-dim") o.lightning_head_dim = num();
        else if (a == "--vocab") o.vocab = num();
        else if (a == "--shards") o.shards = num();
        else if (a == "--seed") o.seed = static_cast<uint64_t>(num());
        else if (a == "--dense-len") o.dense_len = num();
        else if (a == "--legacy-tokenizer") o.tokenizer_legacy = true;
        else if (a == "--dtype") o.dtype = next();
        else if (a == "--fp16-values") o.fp16_values = true;
        else if (a == "--gptq-bits") o.gptq.bits = static_cast<int>(num());
        else if (a == "--gptq-group-size") o.gptq.group_size = num();
        else if (a == "--gptq-asym") o.gptq.sym = false;
        else if (a == "--gptq-desc-act") o.gptq.desc_act = true;
        else if (a == "--gptq-v2") o.gptq.v2 = true;
        else if (a == "--gptq-dynamic") o.gptq.dynamic = next();
        else if (a == "--gptq-dequantized-twin") o.gptq.dequantized_twin = true;
        else if (a == "--sparse-layers") {
            o.sparse_layers.clear();
            std::string list = next();
            size_t pos = 0;
            while (pos < list.size()) {
                const size_t comma = list.find(',', pos);
                o.sparse_layers.push_back(std::stoll(list.substr(pos, comma - pos)));
                if (comma == std::string::npos) break;
                pos = comma + 1;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (o.out_dir.empty() || o.corpus_dir.empty()) {
        usage();
        return 2;
    }
    const auto s = quire::tools::write_tiny_model(o);
    if (!s) {
        std::fprintf(stderr, "quire-make-tiny-model: %s\n", s.message().c_str());
        return 1;
    }
    std::printf("wrote tiny model to %s\n", o.out_dir.c_str());
    return 0;
}
