#include "gpu_budget.h"

#include <QCoreApplication>
#include <QLocale>

#include "file_util.h"
#include "gpu_fit_report.h"

namespace quire::ui {

namespace {
QString tr(const char* s) { return QCoreApplication::translate("GpuBudget", s); }
QString gib(int64_t bytes) { return QString::fromStdString(format_gib(bytes)); }
}  // namespace

qint64 gpuBudgetSetting(app::LibraryDb& db) {
    auto v = db.setting("gpu_memory_gib");
    if (!v || v.value().trimmed().isEmpty() || v.value().trimmed() == "0") return 0;
    auto bytes = parse_gpu_memory_gib(v.value().toStdString());
    if (bytes) return bytes.value();
    // Earlier versions stored budgets under 1 GiB, which the parser now refuses: the nearest budget.
    bool ok = false;
    const double gib = v.value().trimmed().toDouble(&ok);
    return ok && gib > 0 && gib < 1 ? qint64(1) << 30 : 0;
}

WeightFormat folderWeightFormat(const QString& dir) {
    auto text = read_text_file((dir + "/config.json").toStdString(), 16 << 20);
    if (!text) return WeightFormat::bf16();
    auto format = weight_format_of_config(text.value());
    return format ? format.value() : WeightFormat::bf16();
}

QString gpuPlanSummary(const ModelConfig& c, const WeightFormat& format, qint64 tokens, qint64 reserve, qint64 budget, const QString& budgetName) {
    const GpuMemoryPlan plan = plan_gpu_memory(c, format, tokens + reserve);
    QString text = plan.total() <= budget
                       ? tr("Fits the GPU: this library (%1 tokens + %2 for the conversation) needs %3 of the %4 %5.")
                       : tr("Does not fit the GPU: this library (%1 tokens + %2 for the conversation) needs %3, more than the %4 %5.");
    text = text.arg(QLocale().toString(tokens), QLocale().toString(reserve), gib(plan.total()), gib(budget), budgetName);
    text += "\n" + QString::fromStdString(describe_plan(plan));
    QStringList longest;
    for (const FitRow& r : fit_rows(c, format, budget))
        longest << QString("%1%2: %3")
                       .arg(QString::fromStdString(r.format.name()), r.after_quantize ? tr(" (after quire quantize)") : QString(),
                            r.longest > 0 ? tr("%1 tokens").arg(QLocale().toString(r.longest)) : tr("won't fit"));
    text += "\n" + tr("Longest context in %1: %2").arg(gib(budget), longest.join(" · "));
    return text;
}

QString gpuBudgetProblem(const ModelConfig& c, const WeightFormat& format, qint64 tokens, qint64 reserve, qint64 budget, const QString& budgetName) {
    const GpuMemoryPlan plan = plan_gpu_memory(c, format, tokens + reserve);
    if (plan.total() <= budget) return {};
    const int64_t longest = longest_context_within(c, format, budget);
    QString text = tr("The library needs %1 of GPU memory for %2 tokens plus %3 for the conversation (%4), more than the %5 %6. ")
                       .arg(gib(plan.total()), QLocale().toString(tokens), QLocale().toString(reserve),
                            QString::fromStdString(describe_plan(plan)), gib(budget), budgetName);
    text += longest > reserve ? tr("At most %1 tokens of library fit. ").arg(QLocale().toString(longest - reserve))
                              : tr("Not even an empty library fits. ");
    return text + tr("Remove sources, raise the GPU memory budget in Settings, or use a 4-bit model.");
}

}  // namespace quire::ui
