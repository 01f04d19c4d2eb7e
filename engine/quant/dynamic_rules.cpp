#include "quant/dynamic_rules.h"

#include <cstring>
#include <vector>

namespace quire {

bool DynamicRule::matches(const std::string& module_name) const {
    return std::regex_search(module_name, pattern, std::regex_constants::match_continuous);
}

std::string rule_pattern_risk(const std::string& pattern) {
    struct Group {
        bool repeats = false;     // holds a *, +, ? or {n,m}
        bool alternates = false;  // holds a |
    };
    // A long number ("{5555555555555555555}", a back-reference "\\5555555555555555555") overflows
    // inside std::regex's compiler (signed overflow, undefined behaviour; found by the fuzzer).
    for (size_t i = 0, digits = 0; i < pattern.size(); ++i) {
        digits = pattern[i] >= '0' && pattern[i] <= '9' ? digits + 1 : 0;
        if (digits > 6) return "a number of more than 6 digits (std::regex cannot hold it)";
    }
    std::vector<Group> open;
    int repetitions = 0;
    bool in_class = false;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\') {
            ++i;  // an escaped character is a literal (or a class such as \d)
            continue;
        }
        if (in_class) {
            in_class = c != ']';
            continue;
        }
        if (c == '[') {
            in_class = true;
            if (i + 1 < pattern.size() && pattern[i + 1] == ']') ++i;  // "[]...]": the first ] is literal
        } else if (c == '(') {
            open.push_back({});
        } else if (c == ')' && !open.empty()) {
            const Group g = open.back();
            open.pop_back();
            const char next = i + 1 < pattern.size() ? pattern[i + 1] : '\0';
            if ((next == '*' || next == '+' || next == '{') && (g.repeats || g.alternates))
                return "a repeated group that itself " + std::string(g.repeats ? "repeats" : "alternates") +
                       " can take exponential time to match";
            if (!open.empty()) {
                open.back().repeats = open.back().repeats || g.repeats;
                open.back().alternates = open.back().alternates || g.alternates;
            }
        } else if (c == '|') {
            if (!open.empty()) open.back().alternates = true;
        } else if (c == '*' || c == '+' || c == '{' || (c == '?' && i > 0 && !std::strchr("(*+?}", pattern[i - 1]))) {
            // ? is a quantifier too (zero or one: "(?:.?){40}" backtracks like a star), except as a
            // group's modifier "(?:" or a lazy mark "*?", "+?", "??", "{n}?".
            if (++repetitions > kMaxRuleRepetitions)
                return "more than " + std::to_string(kMaxRuleRepetitions) + " repetitions (*, +, ?, {}) take too long to match";
            if (!open.empty()) open.back().repeats = true;
        }
    }
    return {};
}

}  // namespace quire
