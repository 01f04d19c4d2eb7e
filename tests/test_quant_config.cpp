// quantization_config (docs/quantization.md §1-§2): the real MiniCPM-SALA GPTQ settings parse and
// resolve per module as GPTQModel resolves them; every malformed field is refused with its own
// message naming the field and the value.
#include <QtTest>

#include "file_util.h"
#include "json.h"
#include "model_config.h"
#include "model_tensors.h"
#include "test_support.h"

using namespace quire;

namespace {
// GPTQModel 5.7's quantization_config of the community MiniCPM-SALA INT4 checkpoint.
const char* kSalaQuant =
    R"({"bits": 4, "group_size": 128, "desc_act": false, "sym": true, "lm_head": false, "quant_method": "gptq",)"
    R"( "checkpoint_format": "gptq", "pack_dtype": "int32", "damp_percent": 0.05, "true_sequential": true,)"
    R"( "dynamic": {"-:.*self_attn\\.o_gate.*": {}, "-:.*self_attn\\.z_proj.*": {}},)"
    R"( "meta": {"quantizer": ["gptqmodel:5.7.0"], "uri": "https://github.com/modelcloud/gptqmodel"}})";

std::string real_config_with(const std::string& quant_json) {
    auto t = read_text_file(test::test_data("real_config/config.json"), 1 << 20);
    std::string text = t.value();
    const size_t end = text.rfind('}');
    return text.substr(0, end) + ", \"quantization_config\": " + quant_json + "\n}\n";
}

// The real config's quantization_config with one field replaced (value "" removes it).
std::string sala_with(const std::string& field, const std::string& value) {
    auto parsed = parse_json(kSalaQuant);
    std::string out = "{";
    bool replaced = false;
    for (const auto& [key, v] : parsed->members()) {
        std::string text;
        if (key == field) {
            replaced = true;
            if (value.empty()) continue;
            text = value;
        } else if (v.is_string()) {
            text = json_quote(v.as_string());
        } else if (v.is_bool()) {
            text = v.as_bool() ? "true" : "false";
        } else if (v.is_integer()) {
            text = std::to_string(v.as_int());
        } else if (key == "dynamic") {
            text = R"({"-:.*self_attn\\.o_gate.*": {}, "-:.*self_attn\\.z_proj.*": {}})";
        } else {
            text = "{}";
        }
        out += std::string(out.size() > 1 ? ", " : "") + json_quote(key) + ": " + text;
    }
    if (!replaced && !value.empty()) out += ", " + json_quote(field) + ": " + value;
    return out + "}";
}

QuantConfig parse_ok(const std::string& json) {
    std::vector<std::string> problems;
    auto v = parse_json(json);
    if (!v) qFatal("test JSON is invalid: %s", json.c_str());
    QuantConfig q = parse_quant_config(v.value(), problems);
    if (!problems.empty()) qFatal("unexpected problem: %s", problems.front().c_str());
    return q;
}
}  // namespace

class TestQuantConfig : public QObject {
    Q_OBJECT
private slots:
    void real_sala_gptq_config_resolves_per_module() {
        auto c = parse_model_config(real_config_with(kSalaQuant));
        QVERIFY2(c.is_ok(), c.status().message().c_str());
        QVERIFY(c->quantization.has_value());
        const QuantConfig& q = *c->quantization;
        QCOMPARE(q.bits, 4);
        QCOMPARE(q.group_size, int64_t(128));
        QVERIFY(q.sym && !q.desc_act && !q.lm_head);
        QCOMPARE(q.zero_offset(), 1);
        int quantized = 0, skipped = 0;
        for (const TensorSpec& spec : expected_tensors(c.value())) {
            if (!is_quantizable_linear(spec)) continue;
            const std::string module = linear_module_name(spec.name);
            const ModuleQuant m = q.for_module(module);
            const bool gate = module.find("o_gate") != std::string::npos || module.find("z_proj") != std::string::npos;
            QVERIFY2(m.quantized != gate, module.c_str());
            (m.quantized ? quantized : skipped)++;
        }
        // 32 layers x 7 projections quantized; every layer's output gate (8 o_gate, 24 z_proj) in bf16.
        QCOMPARE(quantized, 224);
        QCOMPARE(skipped, 32);
    }
    void dynamic_rules_follow_gptqmodel_matching() {
        const QuantConfig q = parse_ok(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "dynamic": {)"
                                       R"("-:model\\.layers\\.0\\.": {}, )"
                                       R"("+:.*down_proj": {"bits": 8, "group_size": 64}, )"
                                       R"(".*up_proj": {"sym": false, "desc_act": true}, )"
                                       R"("mlp": {"bits": 8}, )"
                                       R"(".*": {"group_size": 32}}})");
        // "-:" skips; re.match is anchored at the start only, so a prefix rule matches the whole module.
        QVERIFY(!q.for_module("model.layers.0.mlp.down_proj").quantized);
        QVERIFY(q.for_module("model.layers.10.mlp.down_proj").quantized);  // "0\\." does not match "10."
        // The first rule that matches decides: down_proj gets 8 bits / 64, not the later ".*" rule's 32.
        ModuleQuant m = q.for_module("model.layers.1.mlp.down_proj");
        QVERIFY(m.quantized);
        QCOMPARE(m.bits, 8);
        QCOMPARE(m.group_size, int64_t(64));
        QCOMPARE(m.rule, std::string("+:.*down_proj"));
        // A bare pattern overrides too; fields it does not set keep the top-level values.
        m = q.for_module("model.layers.1.mlp.up_proj");
        QVERIFY(!m.sym && m.desc_act);
        QCOMPARE(m.bits, 4);
        QCOMPARE(m.group_size, int64_t(128));
        // "mlp" is not at the start of the name: re.match does not find it, ".*" does.
        m = q.for_module("model.layers.1.mlp.gate_proj");
        QCOMPARE(m.bits, 4);
        QCOMPARE(m.group_size, int64_t(32));
        QVERIFY(parse_ok(R"({"quant_method": "gptq", "bits": 8})").for_module("anything").quantized);
        // Alternation in a group that is not repeated, classes and escapes are fine.
        const QuantConfig r = parse_ok(R"({"quant_method": "gptq", "bits": 4, "dynamic": {)"
                                       R"("-:model\\.layers\\.(1[0-5]|[0-9])\\.self_attn\\..*": {}, )"
                                       "\"[+*)]x{2}\": {}}}");
        QVERIFY(!r.for_module("model.layers.12.self_attn.o_proj").quantized);
        QVERIFY(r.for_module("model.layers.16.self_attn.o_proj").quantized);
        // A group's "(?:" and a lazy "*?" are not quantifiers of their own; an optional "s?" is one.
        const QuantConfig lazy = parse_ok(R"({"quant_method": "gptq", "bits": 4, "dynamic": {)"
                                          R"("-:.*?self_attn\\.(?:o_gate|z_proj)s?": {}}})");
        QVERIFY(!lazy.for_module("model.layers.3.self_attn.z_proj").quantized);
        QVERIFY(lazy.for_module("model.layers.3.self_attn.q_proj").quantized);
    }
    void malformed_field_is_refused_data() {
        QTest::addColumn<QString>("field");
        QTest::addColumn<QString>("value");
        QTest::addColumn<QString>("expected");
        QTest::newRow("unknown method") << "quant_method" << R"("awq")" << R"(quantization_config.quant_method: "awq" is not supported)";
        QTest::newRow("no method") << "quant_method" << "" << "quantization_config.quant_method: missing";
        QTest::newRow("method not a string") << "quant_method" << "4" << "quantization_config.quant_method: must be a string, got 4";
        QTest::newRow("bits 3") << "bits" << "3" << "quantization_config.bits: 3 is not supported (4 or 8)";
        QTest::newRow("bits as string") << "bits" << R"("4")" << R"(quantization_config.bits: must be the integer 4 or 8, got "4" (string))";
        QTest::newRow("bits fraction") << "bits" << "4.5" << "quantization_config.bits: must be the integer 4 or 8";
        QTest::newRow("no bits") << "bits" << "" << "quantization_config.bits: missing";
        QTest::newRow("group 0") << "group_size" << "0" << "quantization_config.group_size: 0 is not supported";
        QTest::newRow("group -7") << "group_size" << "-7" << "quantization_config.group_size: -7 is not supported";
        QTest::newRow("group 48") << "group_size" << "48" << "quantization_config.group_size: 48 is not supported";
        QTest::newRow("group as string") << "group_size" << R"("128")" << R"(quantization_config.group_size: must be an integer, got "128")";
        QTest::newRow("group not dividing in") << "group_size" << "96"
            << "module model.layers.0.mlp.gate_proj (in_features 4096, out_features 16384, bits 4): group_size 96 does not divide in_features";
        QTest::newRow("sym not bool") << "sym" << R"("true")" << R"(quantization_config.sym: must be true or false, got "true")";
        QTest::newRow("desc_act not bool") << "desc_act" << "1" << "quantization_config.desc_act: must be true or false, got 1";
        QTest::newRow("format marlin") << "checkpoint_format" << R"("marlin")" << R"(quantization_config.checkpoint_format: "marlin" is not supported)";
        QTest::newRow("pack int16") << "pack_dtype" << R"("int16")" << R"(quantization_config.pack_dtype: "int16" is not supported (only int32))";
        QTest::newRow("lm_head quantized") << "lm_head" << "true" << "quantization_config.lm_head: true (a quantized lm_head) is not supported";
        QTest::newRow("marlin flag") << "is_marlin_format" << "true" << "quantization_config.is_marlin_format: true";
        QTest::newRow("dynamic not object") << "dynamic" << "[1]" << "quantization_config.dynamic: must be an object";
        // (ordinary string literals: moc miscounts an unbalanced parenthesis inside a raw string)
        QTest::newRow("dynamic bad regex") << "dynamic" << "{\"-:.*self_attn\\\\.[o_gate\": {}}"
            << "quantization_config.dynamic[\"-:.*self_attn\\\\.[o_gate\"]: the regular expression \".*self_attn\\\\.[o_gate\" does not compile";
        // What RE2 cannot match in linear time is refused by name: back-references, look-around, counts
        // over 1000. (A count too long for any integer, which overflowed inside std::regex's compiler,
        // is RE2's literal text "{5555...}": harmless, it names no module.)
        QTest::newRow("dynamic back-reference") << "dynamic" << "{\"-:(a)\\\\1x\": {}}" << "does not compile (invalid escape sequence";
        QTest::newRow("dynamic look-ahead") << "dynamic" << "{\"-:(?!mlp).*\": {}}" << "does not compile (invalid perl operator";
        QTest::newRow("dynamic large program") << "dynamic" << "{\"-:(.?){100}a{100}\": {}}"
            << "is too large to match quickly (1204 instructions; at most 500)";
        QTest::newRow("dynamic count over 1000") << "dynamic" << "{\"-:a{1001}\": {}}" << "does not compile (invalid repetition size: {1001})";
        QTest::newRow("dynamic empty pattern") << "dynamic" << R"({"+:": {"bits": 8}})" << R"(quantization_config.dynamic["+:"]: the pattern is empty)";
        QTest::newRow("dynamic override bits 5") << "dynamic" << R"({".*mlp.*": {"bits": 5}})"
            << R"(quantization_config.dynamic[".*mlp.*"].bits: 5 is not supported (4 or 8))";
        QTest::newRow("dynamic override group -2") << "dynamic" << R"({".*mlp.*": {"group_size": -2}})"
            << R"(quantization_config.dynamic[".*mlp.*"].group_size: -2 is not supported)";
        QTest::newRow("dynamic override sym string") << "dynamic" << R"({".*mlp.*": {"sym": "no"}})"
            << R"(quantization_config.dynamic[".*mlp.*"].sym: must be true or false, got "no")";
        QTest::newRow("dynamic value not object") << "dynamic" << R"({".*mlp.*": 8})"
            << R"(quantization_config.dynamic[".*mlp.*"]: must map to an object of overrides, got number)";
        QTest::newRow("dynamic override not dividing") << "dynamic" << R"({"+:.*down_proj": {"group_size": 96}})"
            << R"(module model.layers.0.mlp.down_proj (in_features 16384, out_features 4096, bits 4, by dynamic rule "+:.*down_proj"): group_size 96 does not divide in_features)";
        QTest::newRow("duplicate field") << "bits" << "4, \"bits\": 8" << "quantization_config.bits: appears twice";
        QTest::newRow("not an object") << "*" << "[4]" << "quantization_config: must be an object, got array";
    }
    void malformed_field_is_refused() {
        QFETCH(QString, field);
        QFETCH(QString, value);
        QFETCH(QString, expected);
        const std::string quant = field == "*" ? value.toStdString() : sala_with(field.toStdString(), value.toStdString());
        auto c = parse_model_config(real_config_with(quant));
        QVERIFY2(!c.is_ok(), quant.c_str());
        QCOMPARE(c.status().code(), ErrorCode::invalid_config);
        QVERIFY2(c.status().message().find(expected.toStdString()) != std::string::npos, c.status().message().c_str());
    }
    void every_problem_is_listed() {
        auto c = parse_model_config(real_config_with(R"({"quant_method": "gptq", "bits": 3, "group_size": 0, "sym": 1})"));
        QVERIFY(!c.is_ok());
        const std::string m = c.status().message();
        QVERIFY2(m.find("bits: 3") != std::string::npos && m.find("group_size: 0") != std::string::npos &&
                     m.find("sym: must be true or false, got 1") != std::string::npos,
                 m.c_str());
    }
    void in_features_must_fill_whole_words() {
        // 8-bit packs 4 values per word; 4-bit 8: an intermediate_size of 16388 fills no whole 8-value words.
        auto t = read_text_file(test::test_data("real_config/config.json"), 1 << 20).value();
        const std::string key = "\"intermediate_size\": 16384";
        QVERIFY(t.find(key) != std::string::npos);
        t.replace(t.find(key), key.size(), "\"intermediate_size\": 16388");
        t = t.substr(0, t.rfind('}')) + R"(, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -1}})";
        auto c = parse_model_config(t);
        QVERIFY(!c.is_ok());
        QVERIFY2(c.status().message().find("module model.layers.0.mlp.down_proj (in_features 16388, out_features 4096, bits 4): "
                                           "in_features is not a multiple of 8 values per int32 word") != std::string::npos,
                 c.status().message().c_str());
    }
    // Patterns that made std::regex backtrack for minutes to hours on a module name (nested or
    // many repetitions: a hostile config.json, and CI's fuzzer timing out) are ordinary for RE2: accepted,
    // and each decides as Python's re.match would. Python's named groups are accepted too.
    void backtracking_patterns_match_as_python_would() {
        const std::string rules = R"({"-:(.*)*o_gate": {}, "-:(.|.)+z_proj": {}, "-:.*.*.*.*.*\\.layers\\.1\\.mlp\\.down_proj": {},
            "+:(?:.?){40}XYZ": {"bits": 8}, "+:(?P<m>model)\\.layers\\.2\\.": {"bits": 8}})";
        std::vector<std::string> problems;
        auto v = parse_json(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "dynamic": )" + rules + "}");
        QVERIFY(v.is_ok());
        const QuantConfig q = parse_quant_config(v.value(), problems);
        QVERIFY2(problems.empty(), problems.empty() ? "" : problems[0].c_str());
        QCOMPARE(q.dynamic.size(), size_t(5));
        QVERIFY(!q.for_module("model.layers.0.self_attn.o_gate").quantized);
        QVERIFY(!q.for_module("model.layers.3.self_attn.z_proj").quantized);
        QVERIFY(!q.for_module("model.layers.1.mlp.down_proj").quantized);
        QVERIFY(q.for_module("model.layers.0.mlp.down_proj").quantized);
        QCOMPARE(q.for_module("model.layers.2.mlp.up_proj").bits, 8);
        QCOMPARE(q.for_module("model.layers.3.mlp.up_proj").bits, 4);
        // re.match is anchored at the start only: "mlp" does not match "model.layers.0.mlp.up_proj".
        std::vector<std::string> more;
        auto w = parse_json(R"({"quant_method": "gptq", "bits": 4, "dynamic": {"-:mlp": {}, "-:model\\.layers\\.5": {}}})");
        QVERIFY(w.is_ok());
        const QuantConfig anchored = parse_quant_config(w.value(), more);
        QVERIFY(more.empty());
        QCOMPARE(anchored.dynamic.size(), size_t(2));
        QVERIFY(anchored.for_module("model.layers.0.mlp.up_proj").quantized);
        QVERIFY(!anchored.for_module("model.layers.5.mlp.up_proj").quantized);  // matched at the start, open at the end
    }

    // Many rules: RE2 keeps each match linear, but a config's rules are bounded together (a match costs
    // up to its program when RE2's DFA gives up), and thousands of refused rules are named by the first few.
    void many_rules_are_bounded_together() {
        // The problems of a quantization_config whose `dynamic` holds `count` skip rules PATTERN0, PATTERN1, ...
        auto problemsOf = [](const std::string& pattern, int count) {
            std::string rules;
            for (int i = 0; i < count; ++i) rules += (i ? ", " : "") + std::string("\"-:") + pattern + std::to_string(i) + "\": {}";
            std::vector<std::string> problems;
            auto v = parse_json("{\"quant_method\": \"gptq\", \"bits\": 4, \"dynamic\": {" + rules + "}}");
            if (v.is_ok()) parse_quant_config(v.value(), problems);
            else problems.push_back("not JSON: " + v.status().message());
            return problems;
        };
        const auto problems = problemsOf(".*self_attn\\\\.o_gate.*x", 1000);
        QCOMPARE(problems.size(), size_t(1));
        QVERIFY2(problems[0].find("the rules' regular expressions together are too large to match quickly (more than 20000") != std::string::npos,
                 problems[0].c_str());
        const auto refused = problemsOf("[a]\\\\1", 100);
        QCOMPARE(refused.size(), size_t(21));
        QVERIFY2(refused.back().find("more rules are refused after these 20 (100 rules in all)") != std::string::npos, refused.back().c_str());
    }

    void huge_regex_is_refused_without_compiling() {
        const std::string pattern(5000, 'a');
        std::vector<std::string> problems;
        auto v = parse_json(R"({"quant_method": "gptq", "bits": 4, "dynamic": {")" + pattern + R"(": {}}})");
        parse_quant_config(v.value(), problems);
        QCOMPARE(problems.size(), size_t(1));
        QVERIFY2(problems[0].find("the pattern has 5000 characters (at most 1024)") != std::string::npos, problems[0].c_str());
    }
};

QTEST_GUILESS_MAIN(TestQuantConfig)
#include "test_quant_config.moc"
