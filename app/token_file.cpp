#include "token_file.h"

#include <QString>

#include <charconv>

#include "regular_file.h"

namespace quire::cli {

bool read_token_file(const std::string& path, std::vector<int32_t>& out, std::string& error) {
    auto bytes = app::readRegularFile(QString::fromStdString(path), int64_t(64) << 20);
    if (!bytes) {
        error = "token file " + bytes.status().message();
        return false;
    }
    const char* p = bytes->constData();
    const char* end = p + bytes->size();
    auto space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
    while (p < end) {
        while (p < end && space(*p)) ++p;
        const char* word = p;
        while (p < end && !space(*p)) ++p;
        if (word == p) break;
        int64_t v = 0;
        const auto [stop, ec] = std::from_chars(word, p, v);
        if (ec != std::errc() || stop != p || v < 0 || v > 0x7FFFFFFF) {
            error = "token file " + path + ": '" + std::string(word, p) + "' is not a token id";
            return false;
        }
        out.push_back(static_cast<int32_t>(v));
    }
    return true;
}

}  // namespace quire::cli
