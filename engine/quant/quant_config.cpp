#include "quant/quant_config.h"

#include "json.h"

namespace quire {

const char* gptq_format_name(GptqFormat format) { return format == GptqFormat::gptq ? "gptq" : "gptq_v2"; }

namespace {

// Module names are short; a longer pattern is not a real rule.
constexpr size_t kMaxRulePatternChars = 1024;
constexpr size_t kMaxRuleProblems = 20;
constexpr size_t kMaxDynamicRules = 4096;

std::string shown(const JsonValue& v) {
    switch (v.type()) {
    case JsonValue::Type::string: return json_quote(v.as_string());
    case JsonValue::Type::boolean: return v.as_bool() ? "true" : "false";
    case JsonValue::Type::number:
        return v.is_integer() ? std::to_string(v.as_int()) : std::to_string(v.as_double());
    default: return JsonValue::type_name(v.type());
    }
}

// The fields a dynamic override may set and the top level sets, read the same way for both.
struct Reader {
    const JsonValue& obj;
    std::string prefix;
    std::vector<std::string>& problems;

    void problem(const std::string& field, const std::string& what) { problems.push_back(prefix + field + ": " + what); }
    const JsonValue* get(const char* field) const {
        const JsonValue* v = obj.find(field);
        return v && !v->is_null() ? v : nullptr;
    }
    std::optional<bool> boolean(const char* field) {
        const JsonValue* v = get(field);
        if (!v) return std::nullopt;
        if (!v->is_bool()) {
            problem(field, "must be true or false, got " + shown(*v));
            return std::nullopt;
        }
        return v->as_bool();
    }
    std::optional<int> bits() {
        const JsonValue* v = get("bits");
        if (!v) return std::nullopt;
        if (!v->is_integer()) {
            problem("bits", "must be the integer 4 or 8, got " + shown(*v) + " (" + JsonValue::type_name(v->type()) + ")");
            return std::nullopt;
        }
        if (v->as_int() != 4 && v->as_int() != 8) {
            problem("bits", std::to_string(v->as_int()) + " is not supported (4 or 8)");
            return std::nullopt;
        }
        return static_cast<int>(v->as_int());
    }
    std::optional<int64_t> group_size() {
        const JsonValue* v = get("group_size");
        if (!v) return std::nullopt;
        if (!v->is_integer()) {
            problem("group_size", "must be an integer, got " + shown(*v) + " (" + JsonValue::type_name(v->type()) + ")");
            return std::nullopt;
        }
        const int64_t g = v->as_int();
        if (g != -1 && (g <= 0 || g % 32 != 0)) {
            problem("group_size", std::to_string(g) + " is not supported (-1 for one group, or a positive multiple of 32: 32, 64, 128, ...)");
            return std::nullopt;
        }
        return g;
    }
};

void read_dynamic(const JsonValue& v, QuantConfig& q, std::vector<std::string>& problems) {
    if (!v.is_object()) {
        problems.push_back("quantization_config.dynamic: must be an object of \"pattern\": {overrides}, got " +
                           std::string(JsonValue::type_name(v.type())));
        return;
    }
    if (std::string dup = v.first_duplicate_key(); !dup.empty())
        problems.push_back("quantization_config.dynamic: rule " + json_quote(dup) + " appears twice");
    if (v.members().size() > kMaxDynamicRules) {
        problems.push_back("quantization_config.dynamic: " + std::to_string(v.members().size()) + " rules (at most " +
                           std::to_string(kMaxDynamicRules) + ")");
        return;
    }
    int program_total = 0;
    const size_t problems_before = problems.size();
    for (const auto& [key, overrides] : v.members()) {
        // A file of thousands of bad rules is named by its first few.
        if (problems.size() - problems_before >= kMaxRuleProblems) {
            problems.push_back("quantization_config.dynamic: more rules are refused after these " + std::to_string(kMaxRuleProblems) +
                               " (" + std::to_string(v.members().size()) + " rules in all)");
            return;
        }
        const std::string where = "quantization_config.dynamic[" + json_quote(key) + "]";
        DynamicRule rule;
        rule.key = key;
        std::string pattern = key;
        if (pattern.rfind("-:", 0) == 0) {
            rule.skip = true;
            pattern.erase(0, 2);
        } else if (pattern.rfind("+:", 0) == 0) {
            pattern.erase(0, 2);
        }
        if (pattern.empty()) {
            problems.push_back(where + ": the pattern is empty");
            continue;
        }
        if (pattern.size() > kMaxRulePatternChars) {
            problems.push_back(where.substr(0, 60) + "...: the pattern has " + std::to_string(pattern.size()) +
                               " characters (at most " + std::to_string(kMaxRulePatternChars) + ")");
            continue;
        }
        CompiledPattern compiled = compile_rule_pattern(pattern);
        if (!compiled.pattern) {
            problems.push_back(where + ": the regular expression " + json_quote(pattern) + " does not compile (" + compiled.error + ")");
            continue;
        }
        if (compiled.program_size > kMaxRuleProgram) {
            problems.push_back(where + ": the regular expression " + json_quote(pattern) + " is too large to match quickly (" +
                               std::to_string(compiled.program_size) + " instructions; at most " + std::to_string(kMaxRuleProgram) + ")");
            continue;
        }
        program_total += compiled.program_size;
        if (program_total > kMaxRulesProgram) {
            problems.push_back("quantization_config.dynamic: the rules' regular expressions together are too large to match quickly "
                               "(more than " + std::to_string(kMaxRulesProgram) + " instructions, passed at " + where + ")");
            return;
        }
        rule.pattern = std::move(compiled.pattern);
        if (!overrides.is_object()) {
            problems.push_back(where + ": must map to an object of overrides, got " + std::string(JsonValue::type_name(overrides.type())));
            continue;
        }
        if (!rule.skip) {  // a skip rule's overrides mean nothing (GPTQModel writes {})
            Reader r{overrides, where + ".", problems};
            rule.bits = r.bits();
            rule.group_size = r.group_size();
            rule.sym = r.boolean("sym");
            rule.desc_act = r.boolean("desc_act");
        }
        q.dynamic.push_back(std::move(rule));
    }
}

}  // namespace

ModuleQuant QuantConfig::for_module(const std::string& module_name) const {
    ModuleQuant m{true, bits, group_size, sym, desc_act, {}};
    for (const DynamicRule& rule : dynamic) {
        if (!rule.matches(module_name)) continue;
        m.rule = rule.key;
        if (rule.skip) {
            m.quantized = false;
            return m;
        }
        if (rule.bits) m.bits = *rule.bits;
        if (rule.group_size) m.group_size = *rule.group_size;
        if (rule.sym) m.sym = *rule.sym;
        if (rule.desc_act) m.desc_act = *rule.desc_act;
        return m;
    }
    return m;
}

QuantConfig parse_quant_config(const JsonValue& v, std::vector<std::string>& problems) {
    QuantConfig q;
    if (!v.is_object()) {
        problems.push_back("quantization_config: must be an object, got " + std::string(JsonValue::type_name(v.type())));
        return q;
    }
    if (std::string dup = v.first_duplicate_key(); !dup.empty())
        problems.push_back("quantization_config." + dup + ": appears twice");
    Reader r{v, "quantization_config.", problems};

    const JsonValue* method = r.get("quant_method");
    if (!method) r.problem("quant_method", "missing (required; only \"gptq\" is supported)");
    else if (!method->is_string()) r.problem("quant_method", "must be a string, got " + shown(*method));
    else if (method->as_string() != "gptq")
        r.problem("quant_method", json_quote(method->as_string()) + " is not supported (only \"gptq\")");

    if (!r.get("bits")) r.problem("bits", "missing (required: 4 or 8)");
    if (auto b = r.bits()) q.bits = *b;
    if (auto g = r.group_size()) q.group_size = *g;
    if (auto s = r.boolean("sym")) q.sym = *s;
    if (auto d = r.boolean("desc_act")) q.desc_act = *d;
    if (auto l = r.boolean("lm_head")) q.lm_head = *l;
    if (q.lm_head) r.problem("lm_head", "true (a quantized lm_head) is not supported; the lm_head must stay in bf16");
    if (auto m = r.boolean("is_marlin_format"); m && *m)
        r.problem("is_marlin_format", "true: Marlin-repacked weights are not supported (only the gptq and gptq_v2 layouts)");

    // GPTQModel writes "checkpoint_format"; older writers used "format" for the same thing.
    const char* format_field = r.get("checkpoint_format") ? "checkpoint_format" : "format";
    if (const JsonValue* f = r.get(format_field)) {
        if (!f->is_string()) r.problem(format_field, "must be a string, got " + shown(*f));
        else if (f->as_string() == "gptq") q.format = GptqFormat::gptq;
        else if (f->as_string() == "gptq_v2") q.format = GptqFormat::gptq_v2;
        else r.problem(format_field, json_quote(f->as_string()) + " is not supported (\"gptq\" or \"gptq_v2\")");
    }
    if (const JsonValue* p = r.get("pack_dtype")) {
        if (!p->is_string()) r.problem("pack_dtype", "must be a string, got " + shown(*p));
        else if (p->as_string() != "int32" && p->as_string() != "torch.int32")
            r.problem("pack_dtype", json_quote(p->as_string()) + " is not supported (only int32)");
    }
    if (const JsonValue* d = r.get("dynamic")) read_dynamic(*d, q, problems);
    return q;
}

}  // namespace quire
