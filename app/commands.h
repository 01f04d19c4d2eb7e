#pragma once
// One function per `quire` subcommand; each returns the process exit code.

namespace quire::cli {

int model_info_command(int argc, char** argv);
int logits_command(int argc, char** argv);
int generate_command(int argc, char** argv);
int pdf_extract_command(int argc, char** argv);
int library_command(int argc, char** argv);
int self_test_command(int argc, char** argv);
int model_download_command(int argc, char** argv);
int serve_command(int argc, char** argv);
int quantize_command(int argc, char** argv);

}  // namespace quire::cli
