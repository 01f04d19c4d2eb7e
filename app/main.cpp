// quire: the command-line entry point. Subcommands are listed in usage().
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"

namespace {
void usage() {
    std::fprintf(stderr,
                 "usage: quire COMMAND [options]\n"
                 "commands:\n"
                 "  model-info DIR       describe and validate a MiniCPM-SALA model folder\n"
                 "  logits ...           write the logits of a token sequence (diagnostics)\n"
                 "  generate ...         stream an answer to a prompt\n"
                 "  library create|list|show, add, remove, ask, chats, export, config\n"
                 "                       the library: read sources once, ask questions about them\n"
                 "  serve [--host H] [--port N] [--api-key-file F]   an OpenAI-compatible server; every library is a model\n"
                 "  self-test            check this installation with the bundled tiny model\n"
                 "  --version            print the version\n");
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "model-info") return quire::cli::model_info_command(argc, argv);
    if (cmd == "logits") return quire::cli::logits_command(argc, argv);
    if (cmd == "generate") return quire::cli::generate_command(argc, argv);
    if (cmd == "pdf-extract") return quire::cli::pdf_extract_command(argc, argv);
    if (cmd == "self-test") return quire::cli::self_test_command(argc, argv);
    if (cmd == "serve") return quire::cli::serve_command(argc, argv);
    for (const char* c : {"library", "add", "remove", "ask", "chats", "export", "config"})
        if (cmd == c) return quire::cli::library_command(argc, argv);
    if (cmd == "--version" || cmd == "version") {
        std::printf("quire %s\n", QUIRE_VERSION);
        return 0;
    }
    usage();
    return 2;
}
