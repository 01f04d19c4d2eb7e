#include "settings_dialog.h"

#include <algorithm>

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>

#include "model_download_dialog.h"
#include "model_info.h"
#include "theme.h"
#include "gpu_budget.h"
#include "gpu_info.h"
#include "local_server.h"
#include "remote/remote_backend.h"
#include "session/session_service.h"

namespace quire::ui {

qint64 stateBytesFor(qint64 tokens, qint64 sparseLayers, qint64 kvHeads, qint64 headDim) {
    // K and V in bf16 plus C1 (1/16) and C2 (1/64) of K, per sparse layer.
    const qint64 kv = tokens * kvHeads * headDim * 2 * 2;
    return sparseLayers * (kv + kv / 32 + kv / 128);
}

namespace {
qint64 availableRam() {
    QFile f("/proc/meminfo");
    if (!f.open(QIODevice::ReadOnly)) return 0;
    for (const QByteArray& line : f.readAll().split('\n'))
        if (line.startsWith("MemAvailable:")) return line.simplified().split(' ').value(1).toLongLong() * 1024;
    return 0;
}
QString gib(qint64 bytes) { return QString::number(static_cast<double>(bytes) / double(1LL << 30), 'f', 1) + " GiB"; }
}  // namespace

SettingsDialog::SettingsDialog(app::LibraryDb& db, qint64 contextTokens, QWidget* parent)
    : QDialog(parent), db_(db), contextTokens_(contextTokens) {
    setWindowTitle(tr("Settings"));
    model_ = new QLineEdit(this);
    auto* browse = new QPushButton(tr("Choose…"), this);
    auto* getModel = new QPushButton(tr("Get model…"), this);
    getModel->setToolTip(tr("Download MiniCPM-SALA from the Hugging Face Hub"));
    modelStatus_ = new QLabel(this);
    modelStatus_->setWordWrap(true);
    modelStatus_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    device_ = new QLabel(this);
    plan_ = new QLabel(this);
    plan_->setWordWrap(true);
    temperature_ = new QDoubleSpinBox(this);
    temperature_->setRange(0, 2);
    temperature_->setSingleStep(0.1);
    topP_ = new QDoubleSpinBox(this);
    topP_->setRange(0.05, 1);
    topP_->setSingleStep(0.05);
    maxTokens_ = new QSpinBox(this);
    maxTokens_->setRange(16, 32768);
    systemPrompt_ = new QPlainTextEdit(this);
    systemPrompt_->setMaximumHeight(80);
    systemPrompt_->setPlaceholderText(tr("Default: answer from the sources and cite pages and files"));
    theme_ = new QComboBox(this);
    theme_->addItems({tr("Follow the system"), tr("Light"), tr("Dark")});
    pdfViewer_ = new QComboBox(this);
    pdfViewer_->addItems({tr("Quire's page view"), tr("The system's PDF viewer")});

    auto setting = [&](const char* key, const QString& fallback) {
        auto v = db_.setting(key);
        return v && !v.value().isEmpty() ? v.value() : fallback;
    };
    model_->setText(setting("model", ""));
    temperature_->setValue(setting("temperature", "0").toDouble());
    topP_->setValue(setting("top_p", "1").toDouble());
    maxTokens_->setValue(setting("max_tokens", "512").toInt());
    systemPrompt_->setPlainText(setting("system_prompt", ""));
    theme_->setCurrentIndex(static_cast<int>(themeFromName(setting("theme", "system"))));
    pdfViewer_->setCurrentIndex(setting("pdf_viewer", "quire") == "system" ? 1 : 0);

    const GpuInfo gpu = probe_gpus();
    gpu_ = new QComboBox(this);
    for (size_t i = 0; i < gpu.devices.size(); ++i)
        gpu_->addItem(tr("GPU %1: %2, %3 total, %4 free")
                          .arg(i)
                          .arg(QString::fromStdString(gpu.devices[i].name), gib(gpu.devices[i].total_memory), gib(gpu.devices[i].free_memory)));
    gpu_->setEnabled(gpu.devices.size() > 1);
    gpu_->setCurrentIndex(std::clamp(setting("gpu", "0").toInt(), 0, std::max(0, gpu_->count() - 1)));
    gpuMemory_ = new QDoubleSpinBox(this);
    gpuMemory_->setObjectName("gpuMemory");
    gpuMemory_->setRange(0, 65536);
    gpuMemory_->setDecimals(1);
    gpuMemory_->setSuffix(tr(" GiB"));
    gpuMemory_->setSpecialValueText(tr("No budget: all of the GPU"));
    gpuMemory_->setToolTip(tr("The most GPU memory Quire may use (weights, the library's state, workspace); a library that does not fit "
                              "is refused before reading, with the numbers. At least 1 GiB. Applies when the model is next loaded."));
    gpuMemory_->setValue(static_cast<double>(gpuBudgetSetting(db_)) / double(1LL << 30));
    device_->setText(gpu.device_count ? tr("Answers are computed on the GPU chosen here (a change applies when the model is next loaded)")
                                      : tr("No GPU (%1): the CPU engine answers").arg(QString::fromStdString(gpu.reason)));

    serve_ = new QCheckBox(tr("Serve on localhost"), this);
    serve_->setObjectName("serveCheck");
    serve_->setToolTip(tr("Answer OpenAI-compatible clients (editors, scripts) on 127.0.0.1; each library is a model"));
    serve_->setChecked(setting("serve.enabled", "0") == "1");
    servePort_ = new QSpinBox(this);
    servePort_->setObjectName("servePort");
    servePort_->setRange(1024, 65535);
    servePort_->setValue(std::clamp(setting("serve.port", "8080").toInt(), 1024, 65535));
    serveStatus_ = new QLabel(this);
    serveStatus_->setObjectName("serveStatus");
    serveStatus_->setWordWrap(true);
    serveStatus_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    serveStatus_->setText(serve_->isChecked() ? tr("Starts when saved") : tr("Off"));
    auto* serveRow = new QHBoxLayout;
    serveRow->addWidget(serve_);
    serveRow->addWidget(new QLabel(tr("Port"), this));
    serveRow->addWidget(servePort_);
    serveRow->addStretch(1);

    remoteUrl_ = new QLineEdit(this);
    remoteUrl_->setObjectName("remoteUrl");
    remoteUrl_->setPlaceholderText(tr("Empty: this computer answers. e.g. http://127.0.0.1:30000/v1 (SGLang, vLLM, quire serve)"));
    remoteModel_ = new QLineEdit(this);
    remoteModel_->setObjectName("remoteModel");
    remoteModel_->setPlaceholderText(tr("The model's name on that server"));
    remoteKeyFile_ = new QLineEdit(this);
    remoteKeyFile_->setObjectName("remoteKeyFile");
    remoteKeyFile_->setPlaceholderText(tr("A file holding the server's API key, if it needs one"));
    remoteStatus_ = new QLabel(this);
    remoteStatus_->setObjectName("remoteStatus");
    remoteStatus_->setWordWrap(true);
    if (auto remote = app::remoteBackend(db_); remote && remote.value()) {
        remoteUrl_->setText(remote.value()->url);
        remoteModel_->setText(remote.value()->model);
        remoteKeyFile_->setText(remote.value()->apiKeyFile);
    }

    auto* modelRow = new QHBoxLayout;
    modelRow->addWidget(model_, 1);
    modelRow->addWidget(browse);
    modelRow->addWidget(getModel);
    auto* form = new QFormLayout;
    form->addRow(tr("Model folder"), modelRow);
    form->addRow(QString(), modelStatus_);
    auto* modelsHome = new QLabel(tr("Downloaded models live in %1").arg(QDir::toNativeSeparators(modelsDir())), this);
    modelsHome->setForegroundRole(QPalette::PlaceholderText);
    modelsHome->setTextInteractionFlags(Qt::TextSelectableByMouse);
    form->addRow(QString(), modelsHome);
    form->addRow(tr("Device"), device_);
    if (gpu_->count() > 0) form->addRow(tr("GPU"), gpu_);
    form->addRow(tr("GPU memory budget"), gpuMemory_);
    form->addRow(tr("Memory plan"), plan_);
    form->addRow(tr("Temperature"), temperature_);
    form->addRow(tr("Top-p"), topP_);
    form->addRow(tr("Max answer tokens"), maxTokens_);
    form->addRow(tr("System prompt"), systemPrompt_);
    form->addRow(tr("Theme"), theme_);
    form->addRow(tr("Cited PDF pages open in"), pdfViewer_);
    form->addRow(tr("Server"), serveRow);
    form->addRow(QString(), serveStatus_);
    form->addRow(tr("Model server"), remoteUrl_);
    form->addRow(tr("Server model"), remoteModel_);
    form->addRow(tr("Server API key file"), remoteKeyFile_);
    form->addRow(QString(), remoteStatus_);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Save | QDialogButtonBox::Cancel, this);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(buttons);
    resize(640, 680);

    connect(browse, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("MiniCPM-SALA model folder"), model_->text());
        if (!dir.isEmpty()) model_->setText(dir);
    });
    connect(getModel, &QPushButton::clicked, this, [this] {
        ModelDownloadDialog dialog(modelsDir(), this);
        if (dialog.exec() == QDialog::Accepted && !dialog.downloadedModel().isEmpty()) model_->setText(dialog.downloadedModel());
    });
    connect(model_, &QLineEdit::textChanged, this, &SettingsDialog::validateModel);
    connect(gpuMemory_, &QDoubleSpinBox::valueChanged, this, &SettingsDialog::validateModel);
    connect(gpu_, &QComboBox::currentIndexChanged, this, &SettingsDialog::validateModel);
    connect(buttons, &QDialogButtonBox::accepted, this, &SettingsDialog::save);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    validateModel();
}

QString SettingsDialog::modelsDir() const { return QFileInfo(db_.path()).absolutePath() + "/models"; }
void SettingsDialog::showServer(const LocalServer* server) {
    if (!server) return;
    serveStatus_->setText(server->statusText());
    connect(server, &LocalServer::stateChanged, this, [this, server] { serveStatus_->setText(server->statusText()); });
}

QString SettingsDialog::modelDir() const { return model_->text().trimmed(); }

void SettingsDialog::validateModel() {
    if (modelDir().isEmpty()) {
        modelStatus_->setText(tr("No model chosen: the bundled tiny demo model is used (its answers are not meaningful)."));
        plan_->setText(QString());
        return;
    }
    const ModelReport r = inspect_model(modelDir().toStdString());
    if (!r.ok()) {
        QString text = tr("This folder cannot be used:");
        for (const auto& p : r.problems) text += "\n• " + QString::fromStdString(p);
        modelStatus_->setText(text);
        plan_->setText(QString());
        return;
    }
    const ModelConfig& c = *r.config;
    modelStatus_->setText(tr("OK: %1 layers (%2 sparse), %3 parameters, %4").arg(c.num_hidden_layers).arg(c.sparse_layer_count())
                              .arg(QString::fromStdString(with_thousands(c.parameter_count())), QString::fromStdString(format_bytes(r.weight_bytes))));
    // On a GPU (or with a budget set): the planner of `quire model-info --gpu-memory`, against the
    // budget or else the chosen GPU's memory. Without either: host memory for the CPU engine.
    const qint64 budget = static_cast<qint64>(gpuMemory_->value() * double(1LL << 30));
    const GpuInfo gpus = probe_gpus();
    const int chosen = std::max(0, gpu_->currentIndex());
    if (budget > 0 || chosen < static_cast<int>(gpus.devices.size())) {
        const qint64 limit = budget > 0 ? budget : gpus.devices[static_cast<size_t>(chosen)].total_memory;
        plan_->setText(gpuPlanSummary(c, folderWeightFormat(modelDir()), contextTokens_, app::SessionOptions{}.conversationReserve, limit,
                                      budget > 0 ? tr("GPU memory budget set here") : tr("memory of GPU %1").arg(chosen)));
        return;
    }
    const qint64 need = r.weight_bytes + stateBytesFor(contextTokens_, c.sparse_layer_count(), c.num_key_value_heads, c.head_dim) +
                        c.lightning_layer_count() * c.lightning_nh * c.lightning_head_dim * c.lightning_head_dim * 4;
    const qint64 have = availableRam();
    plan_->setText(need <= have ? tr("Fits: this library needs %1, the machine has %2 free").arg(gib(need), gib(have))
                                : tr("Does not fit: needs %1, has %2 free").arg(gib(need), gib(have)));
}

void SettingsDialog::save() {
    const QString dir = modelDir();
    if (!dir.isEmpty() && !inspect_model(dir.toStdString()).ok()) {
        modelStatus_->setText(modelStatus_->text());
        return;  // the problems are on screen
    }
    std::optional<app::RemoteBackendSettings> remote;
    if (const QString url = remoteUrl_->text().trimmed(); !url.isEmpty()) {
        if (Status st = remote::checkEndpointUrl(url.toStdString()); !st) {
            remoteStatus_->setText(QString::fromStdString(st.message()));
            return;
        }
        if (remoteModel_->text().trimmed().isEmpty()) {
            remoteStatus_->setText(tr("Name the model to ask on %1 (its /v1/models lists them).").arg(url));
            return;
        }
        const QFileInfo key(remoteKeyFile_->text().trimmed());
        if (!remoteKeyFile_->text().trimmed().isEmpty() && (!key.isFile() || !key.isReadable())) {
            remoteStatus_->setText(tr("Cannot read the API key file %1.").arg(key.filePath()));
            return;
        }
        remote = app::RemoteBackendSettings{url, remoteModel_->text().trimmed(),
                                            remoteKeyFile_->text().trimmed().isEmpty() ? QString() : key.absoluteFilePath()};
    }
    if (Status st = app::setRemoteBackend(db_, remote); !st) {
        remoteStatus_->setText(QString::fromStdString(st.message()));
        return;
    }
    (void)db_.setSetting("model", dir);
    (void)db_.setSetting("temperature", QString::number(temperature_->value()));
    (void)db_.setSetting("top_p", QString::number(topP_->value()));
    (void)db_.setSetting("max_tokens", QString::number(maxTokens_->value()));
    (void)db_.setSetting("system_prompt", systemPrompt_->toPlainText());
    (void)db_.setSetting("theme", themeName(static_cast<Theme>(theme_->currentIndex())));
    (void)db_.setSetting("pdf_viewer", pdfViewer_->currentIndex() == 1 ? "system" : "quire");
    if (gpu_->count() > 0) (void)db_.setSetting("gpu", QString::number(gpu_->currentIndex()));
    // A budget is at least 1 GiB (parse_gpu_memory_gib): 0.1-0.9 would otherwise be stored and read back as none.
    const double gpuGib = gpuMemory_->value() > 0 ? std::max(1.0, gpuMemory_->value()) : 0.0;
    (void)db_.setSetting("gpu_memory_gib", gpuGib > 0 ? QString::number(gpuGib) : QString("0"));
    (void)db_.setSetting("serve.enabled", serve_->isChecked() ? "1" : "0");
    (void)db_.setSetting("serve.port", QString::number(servePort_->value()));
    applyTheme(static_cast<Theme>(theme_->currentIndex()));
    accept();
}

}  // namespace quire::ui
