#pragma once
// The per-module `dynamic` rules of a GPTQModel quantization_config (docs/quantization.md §2):
// "-:REGEX" leaves matching modules unquantized; "+:REGEX" or a bare "REGEX" overrides bits,
// group_size, sym or desc_act for them. Matching follows GPTQModel's dynamic_get
// (gptqmodel/quantization/config.py): the rules are tried in order, each with Python's re.match on
// the full dotted module name ("model.layers.3.self_attn.o_gate"), i.e. anchored at the start but
// not at the end, and the first rule that matches decides.

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace quire {

// What one module's tensors must be: skipped (bf16 weight) or GPTQ with these settings.
struct ModuleQuant {
    bool quantized = false;
    int bits = 4;
    int64_t group_size = 128;  // as configured: -1 means one group over all of in_features
    bool sym = true;
    bool desc_act = false;
    std::string rule;          // the dynamic rule that decided, as written; empty for the defaults
};

struct DynamicRule {
    std::string key;      // the rule as written, for messages
    bool skip = false;    // "-:" rule
    std::regex pattern;   // ECMAScript syntax, which agrees with Python's re for these patterns
    std::optional<int> bits;
    std::optional<int64_t> group_size;
    std::optional<bool> sym;
    std::optional<bool> desc_act;

    // re.match semantics: a match that starts at the first character, wherever it ends.
    bool matches(const std::string& module_name) const;
};

// std::regex backtracks: a repeated group that itself repeats or alternates ("(.*)*x", "(.|.)*x"),
// or many repetitions in a row, can run for exponential time on a module name. Such patterns are
// refused up front: this returns why, or an empty string for a pattern that is safe to match.
// GPTQModel's rules ("-:.*self_attn\\.o_gate.*", "model\\.layers\\.(1[0-5]|[0-9])\\..*") pass.
constexpr int kMaxRuleRepetitions = 4;
std::string rule_pattern_risk(const std::string& pattern);

}  // namespace quire
