// quire: the command-line entry point. Subcommands are listed in usage().
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"

namespace {
void usage(FILE* to) {
    std::fprintf(to,
                 "usage: quire COMMAND [options]\n"
                 "commands:\n"
                 "  model-info DIR       describe and validate a MiniCPM-SALA model folder\n"
                 "  model download [REPO] [--to DIR]  download a model from the Hugging Face Hub\n"
                 "  logits ...           write the logits of a token sequence (diagnostics)\n"
                 "  generate ...         stream an answer to a prompt\n"
                 "  library create|list|show, add, remove, ask, chats, export, config\n"
                 "                       the library: read sources once, ask questions about them\n"
                 "  serve [--host H] [--port N] [--api-key-file F]   an OpenAI-compatible server; every library is a model\n"
                 "  quantize SRC DST --bits 4|8 [--method rtn|gptq]   write a GPTQ-layout 4/8-bit copy of a model\n"
                 "  self-test            check this installation with the bundled tiny model\n"
                 "  --version            print the version\n"
                 "`quire COMMAND --help` describes a command and its options.\n");
}
int run(int argc, char** argv);

// A failed write to stdout (a full disk, /dev/full) must not end in success: every command's output
// is checked once more here, after its last flush.
int finishOutput(int code) {
    errno = 0;
    const bool flushed = std::fflush(stdout) == 0;
    if (flushed && !std::ferror(stdout)) return code;
    std::fprintf(stderr, "quire: could not write the output%s%s\n", errno ? ": " : "", errno ? std::strerror(errno) : "");
    return code ? code : 1;
}
}  // namespace

int main(int argc, char** argv) { return finishOutput(run(argc, argv)); }

namespace {
int run(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        usage(stdout);
        return 0;
    }
    if (cmd == "model-info") return quire::cli::model_info_command(argc, argv);
    if (cmd == "model") return quire::cli::model_download_command(argc, argv);
    if (cmd == "logits") return quire::cli::logits_command(argc, argv);
    if (cmd == "generate") return quire::cli::generate_command(argc, argv);
    if (cmd == "pdf-extract") return quire::cli::pdf_extract_command(argc, argv);
    if (cmd == "self-test") return quire::cli::self_test_command(argc, argv);
    if (cmd == "serve") return quire::cli::serve_command(argc, argv);
    if (cmd == "quantize") return quire::cli::quantize_command(argc, argv);
    for (const char* c : {"library", "add", "remove", "ask", "chats", "export", "config"})
        if (cmd == c) return quire::cli::library_command(argc, argv);
    if (cmd == "--version" || cmd == "version") {
        std::printf("quire %s\n", QUIRE_VERSION);
        return 0;
    }
    std::fprintf(stderr, "quire: unknown command '%s'\n", cmd.c_str());
    usage(stderr);
    return 2;
}
}  // namespace
