// The CPU engine against the golden fixtures of the independent PyTorch reference
// (tools/reference, tests/data/golden/*/manifest.json; docs/correctness.md explains the tolerances).
#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QtTest>

#include "golden_fixtures.h"
#include "generator.h"
#include "json.h"
#include "sampler.h"

using namespace quire;
using namespace quire::test;

namespace {

// fp32 mode: both implementations keep every intermediate in fp32 and differ only in summation
// order and transcendental rounding: measured rel-RMS ~5e-7 and max |d| ~1.3e-7 on logits of
// magnitude ~0.2. The bounds leave 40x (rel-RMS) and ~700x (max) of headroom yet still catch subtle
// semantic errors: dropping the forced init block moved the long prompt by rel-RMS 1e-3 (max |d|
// 2.2e-4), a decay slope off by one head by max |d| 6e-3 (docs/correctness.md).
constexpr double kFp32RelRms = 2e-5;
constexpr float kFp32MaxAbs = 1e-4f;
// bf16 mode: see kBf16RelRms in docs/correctness.md — two bf16 implementations that round at the same
// points but accumulate in different orders differ by a few bf16 ulps that propagate; measured
// rel-RMS is at most ~1.3x the bf16-vs-fp32 noise floor.
constexpr double kBf16RelRms = 0.03;

}  // namespace

class TestGolden : public QObject {
    Q_OBJECT
private slots:
    // Every fixture folder (the bf16 tiny models' and the GPTQ ones' of tools/reference/make_gptq_golden.sh)
    // must be complete: a manifest that names a file which is not there, or a model the build did not
    // make, is a failure, never a skip.
    void listed_fixture_files_exist() {
        const QDir dir(golden_dir());
        for (const QString& model : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
            const QString fixture = golden_dir() + "/" + model;
            QVERIFY2(QFile::exists(fixture + "/manifest.json"), qPrintable(fixture + " has no manifest.json"));
            const JsonValue manifest = read_manifest(fixture);
            QVERIFY2(QFile::exists(QString::fromStdString(tiny_model(model.toUtf8().constData())) + "/config.json"),
                     qPrintable("the fixtures of " + model + " have no tiny model in " + QUIRE_TINY_MODELS_DIR));
            const JsonValue* cases = manifest.find("cases");
            QVERIFY2(cases && !cases->items().empty(), qPrintable(fixture + "/manifest.json lists no cases"));
            for (const auto& c : cases->items())
                for (const char* key : {"tokens", "logits"}) {
                    const JsonValue* f = c.find(key);
                    QVERIFY2(f && f->is_string(), qPrintable(fixture + ": a case has no \"" + key + "\" file"));
                    const QString path = fixture + "/" + QString::fromStdString(f->as_string());
                    QVERIFY2(QFile::exists(path), qPrintable("the manifest lists " + path + ", which is missing"));
                }
        }
    }
    void matches_reference_data() {
        QTest::addColumn<QString>("model");
        const QDir dir(golden_dir());
        for (const QString& m : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot)) QTest::newRow(qPrintable(m)) << m;
    }
    void matches_reference() {
        QFETCH(QString, model);
        const QString fixture = golden_dir() + "/" + model;
        const JsonValue manifestValue = read_manifest(fixture);
        const JsonValue* manifest = &manifestValue;
        const std::string model_dir = tiny_model(model.toUtf8().constData());
        // The fixtures only mean something for the exact tiny model they were made from.
        const std::string changed = changed_model_file(manifestValue, model_dir);
        QVERIFY2(changed.empty(), qPrintable("tiny model file " + QString::fromStdString(changed) + " changed: regenerate the golden fixtures"));
        auto m = load_model(model_dir);
        const int64_t vocab = m->config().vocab_size;
        auto fp32 = make_engine(m, Precision::fp32);
        auto bf16 = make_engine(m, Precision::bf16);
        for (const auto& c : manifest->find("cases")->items()) {
            const std::string name = c.find("name")->as_string(), mode = c.find("mode")->as_string();
            Engine& engine = mode == "fp32" ? *fp32 : *bf16;
            const auto tokens = read_token_file(fixture + "/" + QString::fromStdString(c.find("tokens")->as_string()));
            const auto positions = int_list(c.find("positions"));
            const auto want = read_logit_rows(fixture + "/" + QString::fromStdString(c.find("logits")->as_string()), positions.size(), vocab);
            const Rows got = run_golden_case(engine, c, tokens, positions);
            double worst_rel = 0;
            float worst_abs = 0;
            for (size_t i = 0; i < positions.size(); ++i) {
                const auto& g = got.at(positions[i]);
                const auto& w = want[i];
                QVERIFY(all_finite(g));
                worst_abs = std::max(worst_abs, max_abs_diff(g, w));
                worst_rel = std::max(worst_rel, rel_rms(g, w));
                const QString where = QString("%1 %2 %3 position %4").arg(model, QString::fromStdString(name), QString::fromStdString(mode)).arg(positions[i]);
                if (mode == "fp32") {
                    QVERIFY2(max_abs_diff(g, w) <= kFp32MaxAbs, qPrintable(where + QString(": max |d| %1").arg(max_abs_diff(g, w))));
                    QVERIFY2(rel_rms(g, w) <= kFp32RelRms, qPrintable(where + QString(": rel-RMS %1").arg(rel_rms(g, w))));
                    QVERIFY2(argmax(g) == argmax(w), qPrintable(where + ": argmax differs"));
                } else {
                    QVERIFY2(rel_rms(g, w) <= kBf16RelRms, qPrintable(where + QString(": rel-RMS %1").arg(rel_rms(g, w))));
                    // Same argmax where the reference's own top-1 margin exceeds the noise.
                    if (top_margin(w) > 2.0f * max_abs_diff(g, w)) QVERIFY2(argmax(g) == argmax(w), qPrintable(where + ": argmax differs"));
                }
            }
            qInfo("%s %s %s: %zu positions, max |d| %.3g, max rel-RMS %.3g", qPrintable(model), name.c_str(), mode.c_str(),
                  positions.size(), double(worst_abs), worst_rel);
        }
        for (const auto& gcase : manifest->find("greedy")->items()) {
            const std::string mode = gcase.find("mode")->as_string();
            Engine& engine = mode == "fp32" ? *fp32 : *bf16;
            std::vector<int32_t> prompt;
            for (int64_t t : int_list(gcase.find("prompt"))) prompt.push_back(static_cast<int32_t>(t));
            std::vector<int32_t> want;
            for (int64_t t : int_list(gcase.find("tokens"))) want.push_back(static_cast<int32_t>(t));
            GenerateOptions opts;
            opts.max_tokens = 16;
            auto seq = engine.new_sequence();
            auto r = generate(engine, *seq, prompt, opts);
            QVERIFY(r.is_ok());
            QCOMPARE(r->tokens, want);
        }
    }
};

QTEST_APPLESS_MAIN(TestGolden)
#include "test_golden.moc"
