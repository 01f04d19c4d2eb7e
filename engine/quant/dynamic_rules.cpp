#include "quant/dynamic_rules.h"

#include <re2/re2.h>

namespace quire {

bool matches_at_start(const re2::RE2& pattern, const std::string& text) {
    return pattern.Match(text, 0, text.size(), re2::RE2::ANCHOR_START, nullptr, 0);
}

bool DynamicRule::matches(const std::string& module_name) const { return pattern && matches_at_start(*pattern, module_name); }

CompiledPattern compile_rule_pattern(const std::string& pattern) {
    re2::RE2::Options options;
    options.set_log_errors(false);   // the error is returned, and said once by the caller
    options.set_max_mem(1 << 20);    // module names are short: a program larger than this is no real rule
    auto compiled = std::make_shared<const re2::RE2>(pattern, options);
    if (!compiled->ok()) return {nullptr, compiled->error(), 0};
    return {compiled, {}, compiled->ProgramSize()};
}

}  // namespace quire
