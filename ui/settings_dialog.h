#pragma once
// Settings: the model folder (validated with the model-info checks, problems shown in words), the
// compute device (which GPU) and the memory plan for the current library, sampling, system prompt, theme.

#include <QDialog>

#include "library/library_db.h"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QSpinBox;

namespace quire::ui {

class SettingsDialog : public QDialog {
    Q_OBJECT
public:
    SettingsDialog(app::LibraryDb& db, qint64 contextTokens, QWidget* parent = nullptr);
    QString modelDir() const;
    QString modelsDir() const;  // where downloaded models go: DATA/models

private:
    void validateModel();
    void save();

    app::LibraryDb& db_;
    qint64 contextTokens_;
    QLineEdit* model_;
    QLabel *modelStatus_, *device_, *plan_;
    QDoubleSpinBox *temperature_, *topP_;
    QSpinBox* maxTokens_;
    QPlainTextEdit* systemPrompt_;
    QComboBox* theme_;
    QComboBox* pdfViewer_;
    QComboBox* gpu_;  // which GPU answers (setting "gpu"); disabled without one
};

// Bytes of memory a library of `tokens` needs beside the weights (docs/model.md §5 sizes).
qint64 stateBytesFor(qint64 tokens, qint64 sparseLayers, qint64 kvHeads, qint64 headDim);

}  // namespace quire::ui
