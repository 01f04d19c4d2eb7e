#pragma once
// Settings: the model folder (validated with the model-info checks, problems shown in words), the
// compute device (which GPU), the GPU memory budget and the memory plan for the current library, sampling, system prompt, theme,
// "Serve on localhost" (quire serve for OpenAI-compatible clients) with its port and address, and the
// model server that answers instead of the local engine (the remote backend `quire config backend` sets).

#include <QDialog>

#include "library/library_db.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QSpinBox;

namespace quire::ui {

class LocalServer;

class SettingsDialog : public QDialog {
    Q_OBJECT
public:
    SettingsDialog(app::LibraryDb& db, qint64 contextTokens, QWidget* parent = nullptr);
    QString modelDir() const;
    QString modelsDir() const;  // where downloaded models go: DATA/models
    // Shows the running local server's address (or why it is not serving) under "Serve on localhost".
    void showServer(const LocalServer* server);

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
    QDoubleSpinBox* gpuMemory_;  // setting "gpu_memory_gib": the GPU memory budget, 0 = none (gpu_budget.h)
    QCheckBox* serve_;       // setting "serve.enabled": quire serve on 127.0.0.1
    QSpinBox* servePort_;    // setting "serve.port"
    QLabel* serveStatus_;    // the address when serving
    QLineEdit *remoteUrl_, *remoteModel_, *remoteKeyFile_;  // the remote backend (empty URL: local engine)
    QLabel* remoteStatus_;
};

// Bytes of memory a library of `tokens` needs beside the weights (docs/model.md §5 sizes).
qint64 stateBytesFor(qint64 tokens, qint64 sparseLayers, qint64 kvHeads, qint64 headDim);

}  // namespace quire::ui
