// quire pdf-extract FILE [--password P]: the PDF reading helper. It runs in its own process so
// that a hostile or broken PDF can only take this process down; the app supervises it with a time
// limit (pdf_reader.cpp). Output: one JSON object on stdout —
//   {"status":"ok","pages":["text of page 1", ...]}
//   {"status":"needs_password"}  {"status":"wrong_password"}  {"status":"error","reason":"..."}
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <cstdio>
#include <memory>
#include <string>

#include "../cli_args.h"
#include "../commands.h"
#include "json.h"

namespace quire::cli {

namespace {
void silence_poppler(const std::string&, void*) {}  // poppler's repair chatter is not for users

int emit(const std::string& json) {
    std::fwrite(json.data(), 1, json.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
}
}  // namespace

int pdf_extract_command(int argc, char** argv) {
    Args args(argc, argv, 2, {});
    if (!args.ok() || args.positional().size() != 1) {
        std::fprintf(stderr, "usage: quire pdf-extract FILE [--password P]\n");
        return 2;
    }
    poppler::set_debug_error_function(silence_poppler, nullptr);
    const std::string path = args.positional()[0];
    const std::string password = args.value("--password").value_or("");
    std::unique_ptr<poppler::document> doc(poppler::document::load_from_file(path));
    if (!doc) return emit("{\"status\":\"error\",\"reason\":\"not a PDF, or damaged beyond repair\"}");
    if (doc->is_locked()) {
        if (password.empty()) return emit("{\"status\":\"needs_password\"}");
        doc->unlock(password, password);
        if (doc->is_locked()) return emit("{\"status\":\"wrong_password\"}");
    }
    std::string json = "{\"status\":\"ok\",\"pages\":[";
    const int pages = doc->pages();
    for (int i = 0; i < pages; ++i) {
        std::unique_ptr<poppler::page> page(doc->create_page(i));
        std::string text;
        if (page) {
            const poppler::byte_array utf8 = page->text().to_utf8();
            text.assign(utf8.begin(), utf8.end());
        }
        if (!is_valid_utf8(text)) text = "";  // never pass invalid bytes on
        json += (i ? "," : "") + json_quote(text);
    }
    json += "]}";
    return emit(json);
}

}  // namespace quire::cli
