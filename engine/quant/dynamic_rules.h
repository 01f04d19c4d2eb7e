#pragma once
// The per-module `dynamic` rules of a GPTQModel quantization_config (docs/quantization.md §2):
// "-:REGEX" leaves matching modules unquantized; "+:REGEX" or a bare "REGEX" overrides bits,
// group_size, sym or desc_act for them. Matching follows GPTQModel's dynamic_get
// (gptqmodel/quantization/config.py): the rules are tried in order, each with Python's re.match on
// the full dotted module name ("model.layers.3.self_attn.o_gate"), i.e. anchored at the start but
// not at the end, and the first rule that matches decides.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace re2 {
class RE2;
}

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
    // RE2 syntax, which agrees with Python's re except for back-references and look-around (refused);
    // RE2 matches in time linear in the name, whatever the pattern (std::regex backtracked: a hostile
    // config.json could make loading a model take hours).
    std::shared_ptr<const re2::RE2> pattern;
    std::optional<int> bits;
    std::optional<int64_t> group_size;
    std::optional<bool> sym;
    std::optional<bool> desc_act;

    // re.match semantics: a match that starts at the first character, wherever it ends.
    bool matches(const std::string& module_name) const;
};

// Compiles a rule's pattern; on failure, why (RE2's own message: an unsupported construct such as a
// back-reference or look-around, a repetition count over 1000, a program over RE2's memory bound).
struct CompiledPattern {
    std::shared_ptr<const re2::RE2> pattern;
    std::string error;
    int program_size = 0;  // RE2's instructions: what a match costs when its DFA cannot be cached
};

// A match is linear in the name but proportional to the program when RE2 falls back from its DFA
// ("(.?){1000}a{1000}": 11,004 instructions, 0.16 s a rule over a model's ~300 modules), so the
// programs are bounded, each and all the rules together. GPTQModel's rules take 20-40.
constexpr int kMaxRuleProgram = 500;
constexpr int kMaxRulesProgram = 20000;
CompiledPattern compile_rule_pattern(const std::string& pattern);

// Python's re.match: a match of `pattern` that starts at the first character of `text`.
bool matches_at_start(const re2::RE2& pattern, const std::string& text);

}  // namespace quire
