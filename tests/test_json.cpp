// The strict JSON parser under config.json and safetensors headers.
#include <QtTest>

#include "json.h"

using namespace quire;

class TestJson : public QObject {
    Q_OBJECT
private slots:
    void parses_values() {
        auto r = parse_json(R"( {"a": [1, -2.5, true, null, "x\u00e9\ud83d\udcda"], "b": {}} )");
        QVERIFY(r.is_ok());
        const JsonValue* a = r->find("a");
        QVERIFY(a && a->is_array());
        QCOMPARE(a->items().size(), size_t(5));
        QVERIFY(a->items()[0].is_integer());
        QCOMPARE(a->items()[0].as_int(), int64_t(1));
        QCOMPARE(a->items()[1].as_double(), -2.5);
        QVERIFY(!a->items()[1].is_integer());
        QCOMPARE(a->items()[4].as_string(), std::string("x\xc3\xa9\xf0\x9f\x93\x9a"));
    }
    void keeps_large_integers_exact() {
        auto r = parse_json("[9007199254740993, 18954407936]");
        QVERIFY(r.is_ok());
        QCOMPARE(r->items()[0].as_int(), int64_t(9007199254740993));
        QCOMPARE(r->items()[1].as_int(), int64_t(18954407936));
        auto big = parse_json("[99999999999999999999]");
        QVERIFY(big.is_ok());
        QVERIFY(!big->items()[0].is_integer());  // does not fit int64: not an exact integer
    }
    void keeps_duplicate_keys_for_the_caller() {
        auto r = parse_json(R"({"k": 1, "j": 2, "k": 3})");
        QVERIFY(r.is_ok());
        QCOMPARE(r->first_duplicate_key(), std::string("k"));
    }
    void rejects_malformed_input_data() {
        QTest::addColumn<QByteArray>("text");
        QTest::newRow("empty") << QByteArray("");
        QTest::newRow("trailing garbage") << QByteArray("{} x");
        QTest::newRow("trailing comma") << QByteArray("[1,]");
        QTest::newRow("leading zero") << QByteArray("[01]");
        QTest::newRow("bad escape") << QByteArray(R"(["\q"])");
        QTest::newRow("lone surrogate") << QByteArray(R"(["\ud800"])");
        QTest::newRow("control char") << QByteArray("[\"a\x01\"]");
        QTest::newRow("invalid utf8") << QByteArray("[\"\xff\"]");
        QTest::newRow("overlong utf8") << QByteArray("[\"\xc0\xaf\"]");
        QTest::newRow("unterminated") << QByteArray("{\"a\": [1, 2");
        QTest::newRow("nan") << QByteArray("[NaN]");
        QTest::newRow("huge exponent") << QByteArray("[1e999]");
        QTest::newRow("too deep") << QByteArray(200, '[');
    }
    void rejects_malformed_input() {
        QFETCH(QByteArray, text);
        auto r = parse_json(std::string_view(text.constData(), static_cast<size_t>(text.size())));
        QVERIFY(!r.is_ok());
        QCOMPARE(r.status().code(), ErrorCode::parse_error);
        QVERIFY(!r.status().message().empty());
    }
    void quotes_strings() {
        QCOMPARE(json_quote("a\"b\\\n\x01"), std::string("\"a\\\"b\\\\\\n\\u0001\""));
        auto r = parse_json(json_quote("round \"trip\"\t"));
        QVERIFY(r.is_ok());
        QCOMPARE(r->as_string(), std::string("round \"trip\"\t"));
    }
};

QTEST_APPLESS_MAIN(TestJson)
#include "test_json.moc"
