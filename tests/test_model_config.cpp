// ModelConfig: the real config parses to the numbers of docs/model.md §1; every invalid field is named.
#include <QtTest>

#include <regex>

#include "file_util.h"
#include "model_config.h"
#include "test_support.h"

using namespace quire;

namespace {
std::string real_config_text() {
    auto t = read_text_file(test::test_data("real_config/config.json"), 1 << 20);
    return t.is_ok() ? t.value() : std::string();
}
// Replaces the value of one top-level field (or inserts/removes it).
std::string with_field(const std::string& text, const std::string& field, const std::string& value) {
    const std::regex re("\"" + field + "\": (\\[[^\\]]*\\]|\\{[^}]*\\}|[^,\\n]*)");
    if (value.empty()) return std::regex_replace(text, std::regex("\\s*\"" + field + "\": [^,\\n]*,"), "");
    return std::regex_replace(text, re, "\"" + field + "\": " + value, std::regex_constants::format_first_only);
}
}  // namespace

class TestModelConfig : public QObject {
    Q_OBJECT
private slots:
    void real_config_matches_spec() {
        auto c = parse_model_config(real_config_text());
        QVERIFY2(c.is_ok(), c.status().message().c_str());
        QCOMPARE(c->vocab_size, int64_t(73448));
        QCOMPARE(c->hidden_size, int64_t(4096));
        QCOMPARE(c->num_hidden_layers, int64_t(32));
        QCOMPARE(c->gqa_group(), int64_t(16));
        QCOMPARE(c->sparse_layer_count(), int64_t(8));
        QCOMPARE(c->lightning_layer_count(), int64_t(24));
        const std::vector<int> sparse = {0, 9, 16, 17, 22, 29, 30, 31};
        for (int l : sparse) QVERIFY(c->mixer_types[static_cast<size_t>(l)] == MixerType::sparse);
        QCOMPARE(c->parameter_count(), int64_t(9477203968));
        QVERIFY(std::fabs(c->residual_scale() - 0.24748737341529164) < 1e-15);
        QCOMPARE(c->logit_divisor(), 16.0);
        QCOMPARE(c->sparse.effective_topk(), int64_t(96));
        QCOMPARE(c->sparse.c2_kernel(), int64_t(128));
        QCOMPARE(c->sparse.c2_stride(), int64_t(64));
        QCOMPARE(c->eos_token_ids, (std::vector<int64_t>{2, 73440}));
    }
    // GPTQ tools often save float16 checkpoints, under the older key torch_dtype (docs/model.md §6).
    void float16_checkpoints_are_accepted() {
        const std::string no_dtype = with_field(real_config_text(), "dtype", "");
        QVERIFY(no_dtype.find("\"dtype\"") == std::string::npos);
        for (const char* key : {"dtype", "torch_dtype"}) {
            const std::string text = std::string(key) == "dtype"
                                         ? with_field(real_config_text(), "dtype", "\"float16\"")
                                         : "{\n  \"torch_dtype\": \"float16\"," + no_dtype.substr(no_dtype.find('{') + 1);
            auto c = parse_model_config(text);
            QVERIFY2(c.is_ok(), c.status().message().c_str());
            QCOMPARE(c->dtype, std::string("float16"));
        }
        auto bad = parse_model_config("{\n  \"torch_dtype\": \"float32\"," + no_dtype.substr(no_dtype.find('{') + 1));
        QVERIFY(!bad.is_ok());
        QVERIFY2(bad.status().message().find("got \"float32\"") != std::string::npos, bad.status().message().c_str());
    }
    void defaults_fill_omitted_fields() {
        std::string t = with_field(real_config_text(), "lightning_nh", "");
        t = with_field(t, "lightning_nkv", "");
        auto c = parse_model_config(t);
        QVERIFY2(c.is_ok(), c.status().message().c_str());
        QCOMPARE(c->lightning_nh, int64_t(32));
        QCOMPARE(c->lightning_nkv, int64_t(32));
    }
    void invalid_field_is_named_data() {
        QTest::addColumn<QString>("field");
        QTest::addColumn<QString>("value");
        QTest::addColumn<QString>("expected");
        QTest::newRow("layer count vs mixer_types") << "num_hidden_layers" << "30" << "mixer_types: has 32 entries but num_hidden_layers is 30";
        QTest::newRow("unknown mixer") << "mixer_types" << R"(["minicpm4", "mamba"])" << "unknown mixer type 'mamba'";
        QTest::newRow("kv heads do not divide") << "num_key_value_heads" << "3" << "num_key_value_heads: 3 does not divide";
        QTest::newRow("zero hidden") << "hidden_size" << "0" << "hidden_size: must be positive";
        QTest::newRow("negative vocab") << "vocab_size" << "-5" << "vocab_size: must be positive";
        QTest::newRow("odd head_dim") << "head_dim" << "100" << "head_dim: 100 is not a multiple of 16";
        QTest::newRow("string where int") << "intermediate_size" << "\"big\"" << "intermediate_size: must be an integer, got string";
        QTest::newRow("bad bool") << "qk_norm" << "1" << "qk_norm: must be true or false";
        QTest::newRow("first layer lightning") << "mixer_types" << R"(["lightning-attn","minicpm4"])" << "mixer_types: layer 0 must be";
        QTest::newRow("block size") << "sparse_config" << R"({"block_size": 128})" << "sparse_config.block_size: must be 64";
        QTest::newRow("kernel stride") << "sparse_config" << R"({"kernel_stride": 8})" << "sparse_config.kernel_stride: must be 16";
        QTest::newRow("window") << "sparse_config" << R"({"window_size": 100})" << "sparse_config.window_size";
        QTest::newRow("topk") << "sparse_config" << R"({"topk": 0})" << "sparse_config.topk: must be positive";
        QTest::newRow("dense_len") << "sparse_config" << R"({"dense_len": -1})" << "sparse_config.dense_len: must be positive";
        QTest::newRow("rope sparse") << "attn_use_rope" << "true" << "attn_use_rope";
        QTest::newRow("bias") << "attention_bias" << "true" << "attention_bias";
        QTest::newRow("act") << "hidden_act" << "\"gelu\"" << "hidden_act: only \"silu\"";
        QTest::newRow("eos outside vocab") << "eos_token_id" << "[2, 99999]" << "eos_token_id: 99999 is outside";
        QTest::newRow("eps") << "rms_norm_eps" << "0" << "rms_norm_eps";
        QTest::newRow("dtype float32") << "dtype" << "\"float32\""
                                       << "dtype: only \"bfloat16\" and \"float16\" checkpoints are supported, got \"float32\"";
        QTest::newRow("dtype foo") << "dtype" << "\"foo\"" << "got \"foo\"";
        QTest::newRow("rope scaling") << "rope_scaling" << R"({"type": "yarn"})" << "rope_scaling";
        QTest::newRow("dim_model_base") << "dim_model_base" << "300" << "dim_model_base: 300 does not divide";
    }
    void invalid_field_is_named() {
        QFETCH(QString, field);
        QFETCH(QString, value);
        QFETCH(QString, expected);
        const std::string text = with_field(real_config_text(), field.toStdString(), value.toStdString());
        auto c = parse_model_config(text);
        QVERIFY(!c.is_ok());
        QCOMPARE(c.status().code(), ErrorCode::invalid_config);
        QVERIFY2(c.status().message().find(expected.toStdString()) != std::string::npos, c.status().message().c_str());
    }
    void missing_required_field() {
        auto c = parse_model_config(R"({"hidden_size": 64})");
        QVERIFY(!c.is_ok());
        QVERIFY(c.status().message().find("vocab_size: missing") != std::string::npos);
        QVERIFY(c.status().message().find("mixer_types: missing") != std::string::npos);
    }
    void not_json_and_duplicates() {
        QVERIFY(parse_model_config("{hidden_size: 1}").status().message().find("not valid JSON") != std::string::npos);
        auto d = parse_model_config(R"({"hidden_size": 1, "hidden_size": 2})");
        QVERIFY(d.status().message().find("hidden_size: appears twice") != std::string::npos);
        QVERIFY(parse_model_config("[]").status().message().find("must be an object") != std::string::npos);
    }
};

QTEST_APPLESS_MAIN(TestModelConfig)
#include "test_model_config.moc"
