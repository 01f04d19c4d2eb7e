// The GPU memory budget in the window (ui/gpu_budget.h): Settings saves it and shows what fits
// before a library is read; the library's problem text (which turns the gauge red and blocks Send)
// when it does not fit; hostile saved values read as no budget.
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QLabel>
#include <QPushButton>
#include <QtTest>

#include "gpu_budget.h"
#include "settings_dialog.h"
#include "test_support.h"

using namespace quire;

namespace {
ModelConfig realConfig() {
    auto c = load_model_config(QUIRE_TEST_DATA_DIR "/real_config/config.json");
    if (!c) qFatal("%s", c.status().message().c_str());
    return c.value();
}

QString planText(ui::SettingsDialog& d) {
    // The plan label is the one that speaks of the GPU or of host memory.
    for (QLabel* l : d.findChildren<QLabel*>())
        if (l->text().contains("fit", Qt::CaseInsensitive)) return l->text();
    return {};
}
}  // namespace

class TestUiGpuBudget : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void settings_save_the_budget_and_show_what_fits() {
        auto db = app::LibraryDb::open(tmp_.path() + "/library.sqlite");
        QVERIFY(db.is_ok());
        QVERIFY(db.value()->setSetting("model", QString::fromStdString(test::tiny_model("tiny-a"))));
        {
            ui::SettingsDialog dialog(*db.value(), 100000);
            auto* budget = dialog.findChild<QDoubleSpinBox*>("gpuMemory");
            QVERIFY(budget);
            QCOMPARE(budget->value(), 0.0);  // no budget by default
            // Less than the CUDA context alone: nothing fits, said with the numbers.
            budget->setValue(0.5);
            QVERIFY2(planText(dialog).contains("Does not fit the GPU"), qPrintable(planText(dialog)));
            QVERIFY(planText(dialog).contains("0.50 GiB"));
            QVERIFY(planText(dialog).contains("won't fit"));
            budget->setValue(24);
            QVERIFY2(planText(dialog).contains("Fits the GPU"), qPrintable(planText(dialog)));
            QVERIFY(planText(dialog).contains("after quire quantize"));  // a bf16 folder: what INT8/INT4 would allow
            dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Save)->click();
        }
        QCOMPARE(db.value()->setting("gpu_memory_gib").value(), QString("24"));
        QCOMPARE(ui::gpuBudgetSetting(*db.value()), qint64(24) << 30);
        {
            ui::SettingsDialog again(*db.value(), 100000);
            QCOMPARE(again.findChild<QDoubleSpinBox*>("gpuMemory")->value(), 24.0);
        }
        // A saved value nobody could type (an edited database) reads as no budget.
        for (const char* bad : {"abc", "-1", "1e9", "nan"}) {
            QVERIFY(db.value()->setSetting("gpu_memory_gib", bad));
            QCOMPARE(ui::gpuBudgetSetting(*db.value()), qint64(0));
            ui::SettingsDialog shown(*db.value(), 100000);
            QCOMPARE(shown.findChild<QDoubleSpinBox*>("gpuMemory")->value(), 0.0);
        }
    }

    void a_library_that_does_not_fit_the_budget_is_refused_with_the_numbers() {
        const ModelConfig c = realConfig();
        const WeightFormat bf16 = WeightFormat::bf16();
        const QString name = "GPU memory budget set in Settings";
        // 1M tokens in bf16 do not fit 24 GiB; the text says how much would.
        const QString problem = ui::gpuBudgetProblem(c, bf16, 1000000, 8192, qint64(24) << 30, name);
        QVERIFY2(problem.contains("of GPU memory"), qPrintable(problem));  // what turns the gauge red
        QVERIFY(problem.contains("24.00 GiB GPU memory budget set in Settings"));
        QVERIFY(problem.contains("At most"));
        QVERIFY(problem.contains("weights 17.65 GiB"));
        // The same library fits 32 GiB, and a 4-bit model fits 24.
        QVERIFY(ui::gpuBudgetProblem(c, bf16, 1000000, 8192, qint64(32) << 30, name).isEmpty());
        QVERIFY(ui::gpuBudgetProblem(c, WeightFormat::gptq(4, 128, WeightFormat::sala_gate_skips()), 1000000, 8192, qint64(24) << 30, name)
                    .isEmpty());
        // Smaller than the weights: not even an empty library.
        QVERIFY(ui::gpuBudgetProblem(c, bf16, 0, 8192, qint64(8) << 30, name).contains("Not even an empty library fits"));
        // The Settings summary lists the longest context per precision.
        const QString summary = ui::gpuPlanSummary(c, bf16, 131072, 8192, qint64(24) << 30, name);
        QVERIFY2(summary.startsWith("Fits the GPU"), qPrintable(summary));
        QVERIFY(summary.contains("GPTQ INT4 (group 128) (after quire quantize)"));
    }

    void the_folder_precision_comes_from_its_config() {
        QCOMPARE(ui::folderWeightFormat(QString::fromStdString(test::tiny_model("tiny-a"))).bits, 16);
        QCOMPARE(ui::folderWeightFormat("/nonexistent/folder").bits, 16);
        QTemporaryDir dir;
        QFile f(dir.filePath("config.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 128}}");
        f.close();
        const WeightFormat w = ui::folderWeightFormat(dir.path());
        QCOMPARE(w.bits, 4);
        QCOMPARE(w.group_size, qint64(128));
    }
};

QTEST_MAIN(TestUiGpuBudget)
#include "test_ui_gpu_budget.moc"
