#pragma once
// The GPU memory budget in the window (setting "gpu_memory_gib", Settings → GPU memory budget): its
// value, and what fits it, from the same planner as `quire model-info --gpu-memory`
// (engine/gpu_memory_plan.h) — for the Settings page before a library is read, and for the library
// gauge, which turns red and blocks Send when the library does not fit.

#include <QString>

#include "gpu_memory_plan.h"
#include "library/library_db.h"

namespace quire::ui {

// Bytes of the saved budget; 0 when none is set (or the saved text is not a usable value).
qint64 gpuBudgetSetting(app::LibraryDb& db);
// The precision the model folder's config.json declares (bf16 when it cannot be read: the folder
// checks report that on their own).
WeightFormat folderWeightFormat(const QString& dir);
// Settings' lines: what the library of `tokens` (plus `reserve` for the conversation) needs and
// whether it fits `budget`, and per precision the longest context that fits.
QString gpuPlanSummary(const ModelConfig& config, const WeightFormat& format, qint64 tokens, qint64 reserve, qint64 budget,
                       const QString& budgetName);
// Why the library does not fit `budget` (empty when it does), naming "GPU memory".
QString gpuBudgetProblem(const ModelConfig& config, const WeightFormat& format, qint64 tokens, qint64 reserve, qint64 budget,
                         const QString& budgetName);

}  // namespace quire::ui
