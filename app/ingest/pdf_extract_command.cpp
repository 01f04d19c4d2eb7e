// quire pdf-extract FILE [--password P | --password-stdin]: the PDF reading helper. It runs in its own process so
// that a hostile or broken PDF can only take this process down; the app supervises it with a time
// limit (pdf_reader.cpp). Output: one JSON object on stdout —
//   {"status":"ok","pages":["text of page 1", ...]}
//   {"status":"needs_password"}  {"status":"wrong_password"}  {"status":"error","reason":"..."}
#include <QFile>

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

int emitJson(const std::string& json) {
    std::fwrite(json.data(), 1, json.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
}
}  // namespace

int pdf_extract_command(int argc, char** argv) {
    CommandLine cl("quire pdf-extract", "Print a PDF's text as JSON (the PDF reading helper process).");
    cl.addPositional("FILE", "The PDF.");
    cl.addText("password", "P", "Its password, if it is encrypted.", "");
    cl.addFlag("password-stdin", "Read the password from the first line of standard input (what Quire does: a password on the "
                                 "command line is visible to every user of the machine).");
    if (auto exit = cl.parse(argc, argv, 2)) return *exit;
    poppler::set_debug_error_function(silence_poppler, nullptr);
    const std::string path = QFile::encodeName(cl.positional()[0]).toStdString();
    std::string password = cl.text("password")->toStdString();
    if (cl.flag("password-stdin")) {
        password.clear();
        for (int c = std::fgetc(stdin); c != EOF && c != '\n'; c = std::fgetc(stdin)) password += static_cast<char>(c);
    }
    std::unique_ptr<poppler::document> doc(poppler::document::load_from_file(path));
    if (!doc) return emitJson("{\"status\":\"error\",\"reason\":\"not a PDF, or damaged beyond repair\"}");
    if (doc->is_locked()) {
        if (password.empty()) return emitJson("{\"status\":\"needs_password\"}");
        doc->unlock(password, password);
        if (doc->is_locked()) return emitJson("{\"status\":\"wrong_password\"}");
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
    return emitJson(json);
}

}  // namespace quire::cli
