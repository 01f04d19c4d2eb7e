#include "cli_args.h"

#include <algorithm>

namespace quire::cli {

Args::Args(int argc, char** argv, int first, const std::vector<std::string>& flags) {
    for (int i = first; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--", 0) != 0) {
            positional_.push_back(a);
            continue;
        }
        if (std::find(flags.begin(), flags.end(), a) != flags.end()) {
            flags_set_.push_back(a);
            continue;
        }
        if (i + 1 >= argc) {
            error_ = "option " + a + " needs a value";
            return;
        }
        values_[a] = argv[++i];
    }
}

std::optional<std::string> Args::value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

bool Args::flag(const std::string& name) const {
    return std::find(flags_set_.begin(), flags_set_.end(), name) != flags_set_.end();
}

}  // namespace quire::cli
