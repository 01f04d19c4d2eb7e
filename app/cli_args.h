#pragma once
// Minimal "--name value" / "--flag" argument reader for the quire subcommands.

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace quire::cli {

class Args {
public:
    // flags: options that take no value.
    Args(int argc, char** argv, int first, const std::vector<std::string>& flags);
    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    std::optional<std::string> value(const std::string& name) const;
    bool flag(const std::string& name) const;
    const std::vector<std::string>& positional() const { return positional_; }

private:
    std::map<std::string, std::string> values_;
    std::vector<std::string> flags_set_;
    std::vector<std::string> positional_;
    std::string error_;
};

}  // namespace quire::cli
