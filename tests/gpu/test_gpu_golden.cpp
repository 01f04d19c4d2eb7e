// The CUDA engine against the golden fixtures of the PyTorch reference: the bf16 cases with the
// bounds of test_golden (docs/correctness.md), and the greedy tokens.
#include <QtTest>

#include "generator.h"
#include "golden_fixtures.h"
#include "gpu_test_main.h"

using namespace quire;
using namespace quire::test;

class TestGpuGolden : public QObject {
    Q_OBJECT
private slots:
    void matches_reference_data() {
        QTest::addColumn<QString>("model");
        for (const QString& m : QDir(golden_dir()).entryList(QDir::Dirs | QDir::NoDotAndDotDot)) QTest::newRow(qPrintable(m)) << m;
    }
    void matches_reference() {
        QFETCH(QString, model);
        const QString fixture = golden_dir() + "/" + model;
        const JsonValue manifest = read_manifest(fixture);
        const std::string model_dir = tiny_model(model.toUtf8().constData());
        const std::string changed = changed_model_file(manifest, model_dir);
        QVERIFY2(changed.empty(), qPrintable("tiny model file " + QString::fromStdString(changed) + " changed"));
        auto m = load_model(model_dir);
        auto e = create_engine(m, Backend::cuda, {});
        QVERIFY2(e.is_ok(), e.status().message().c_str());
        Engine& engine = *e.value();
        double noise = 0;  // the largest logit difference from the reference over the cases below
        for (const auto& c : manifest.find("cases")->items()) {
            if (c.find("mode")->as_string() != "bf16") continue;  // the CUDA engine computes in bf16 only
            const auto tokens = read_token_file(fixture + "/" + QString::fromStdString(c.find("tokens")->as_string()));
            const auto positions = int_list(c.find("positions"));
            const auto want = read_logit_rows(fixture + "/" + QString::fromStdString(c.find("logits")->as_string()), positions.size(),
                                              m->config().vocab_size);
            const Rows got = run_golden_case(engine, c, tokens, positions);
            double worst = 0;
            for (size_t i = 0; i < positions.size(); ++i) {
                const auto& g = got.at(positions[i]);
                QVERIFY(all_finite(g));
                noise = std::max(noise, static_cast<double>(max_abs_diff(g, want[i])));
                const double d = rel_rms(g, want[i]);
                worst = std::max(worst, d);
                QVERIFY2(d <= 0.03, qPrintable(QString("%1 position %2: rel-RMS %3").arg(QString::fromStdString(c.find("name")->as_string())).arg(positions[i]).arg(d)));
                if (top_margin(want[i]) > 2.0f * max_abs_diff(g, want[i])) QCOMPARE(argmax(g), argmax(want[i]));
            }
            qInfo("%s %s bf16 on CUDA: max rel-RMS %.3g", qPrintable(model), c.find("name")->as_string().c_str(), worst);
        }
        for (const auto& gcase : manifest.find("greedy")->items()) {
            if (gcase.find("mode")->as_string() != "bf16") continue;
            std::vector<int32_t> prompt, want;
            for (int64_t t : int_list(gcase.find("prompt"))) prompt.push_back(static_cast<int32_t>(t));
            for (int64_t t : int_list(gcase.find("tokens"))) want.push_back(static_cast<int32_t>(t));
            GenerateOptions opts;
            opts.max_tokens = 16;
            auto seq = engine.new_sequence();
            auto r = generate(engine, *seq, prompt, opts);
            QVERIFY(r.is_ok());
            // Where the reference's greedy path comes closer to a tie than twice the logit noise just
            // measured on the same model (bf16: the backends sum in different orders), that noise may
            // break it either way; otherwise the tokens must be identical.
            const double margin = gcase.find("min_top1_margin")->as_double();
            if (margin > 2.0 * noise) QCOMPARE(r->tokens, want);
            else
                qInfo("%s: the reference's greedy path comes within %.3g of a tie, inside twice the logit noise (%.3g); tokens %s",
                      qPrintable(model), margin, noise, r->tokens == want ? "identical" : "differ");
        }
    }
};

QUIRE_GPU_TEST_MAIN(TestGpuGolden)
#include "test_gpu_golden.moc"
