// `quire model-info`: the report for a good model, for the real config alone, for broken folders.
#include <QProcess>
#include <QtTest>

#include <filesystem>

#include "test_support.h"

namespace {
struct Run {
    int code;
    QString out;
};
Run model_info(const std::string& dir) {
    QProcess p;
    p.start(QString::fromStdString(quire::test::quire_binary()), {"model-info", QString::fromStdString(dir)});
    p.waitForFinished(60000);
    return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput())};
}
}  // namespace

class TestModelInfo : public QObject {
    Q_OBJECT
private slots:
    void tiny_model_is_valid() {
        const Run r = model_info(quire::test::tiny_model("tiny-a"));
        QVERIFY2(r.code == 0, qPrintable(r.out));
        QVERIFY(r.out.contains("layer pattern: SLLS (sparse at 0,3)"));
        QVERIFY(r.out.contains("all bound"));
        QVERIFY(r.out.contains("\ndtype: bfloat16\n"));
        QVERIFY(r.out.contains("<|im_end|>=1016"));
        QVERIFY(r.out.contains("validation: OK"));
    }
    void real_config_without_weights() {
        QTemporaryDir dir;
        std::filesystem::copy_file(quire::test::test_data("real_config/config.json"), dir.path().toStdString() + "/config.json");
        const Run r = model_info(dir.path().toStdString());
        QCOMPARE(r.code, 1);
        QVERIFY2(r.out.contains("parameters: 9,477,203,968 (18.95 GB in bf16)"), qPrintable(r.out));
        QVERIFY(r.out.contains("layer pattern: SLLLLLLLLSLLLLLLSSLLLLSLLLLLLSSS (sparse at 0,9,16,17,22,29,30,31)"));
        QVERIFY(r.out.contains("weights: MISSING"));
        QVERIFY(r.out.contains("problem: weights are missing"));
        QVERIFY(r.out.contains("problem: tokenizer is missing"));
        // A float16 config: named, with no size for copies of weights that are not there.
        QByteArray cfg = quire::test::read_all(dir.path().toStdString() + "/config.json");
        QVERIFY(cfg.contains("\"dtype\": \"bfloat16\""));
        cfg.replace("\"dtype\": \"bfloat16\"", "\"torch_dtype\": \"float16\"");
        QVERIFY(quire::test::write_all(dir.path().toStdString() + "/config.json", cfg));
        const Run f = model_info(dir.path().toStdString());
        QVERIFY2(f.out.contains("\ndtype: float16 (the engines compute in bf16: unquantized tensors are converted when loaded)\n"),
                 qPrintable(f.out));
    }
    void broken_folder_lists_each_problem() {
        QTemporaryDir dir;
        const std::string d = dir.path().toStdString();
        quire::test::copy_folder(quire::test::tiny_model("tiny-a"), d);
        QByteArray cfg = quire::test::read_all(d + "/config.json");
        cfg.replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"relu\"");
        cfg.replace("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": -1");
        QVERIFY(quire::test::write_all(d + "/config.json", cfg));
        const Run r = model_info(d);
        QCOMPARE(r.code, 1);
        QVERIFY(r.out.contains("problem: config.json: hidden_act: only \"silu\" is supported"));
        QVERIFY(r.out.contains("problem: rms_norm_eps: must be in (0, 0.01]"));
    }
    void not_a_folder() {
        const Run r = model_info("/nonexistent/quire-model");
        QCOMPARE(r.code, 1);
        QVERIFY2(r.out.contains("/nonexistent/quire-model: does not exist"), qPrintable(r.out));
        const Run file = model_info("/etc/passwd");
        QCOMPARE(file.code, 1);
        QVERIFY2(file.out.contains("/etc/passwd: not a folder"), qPrintable(file.out));
    }
};

QTEST_GUILESS_MAIN(TestModelInfo)
#include "test_model_info.moc"
