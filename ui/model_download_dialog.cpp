#include "model_download_dialog.h"

#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QThread>
#include <QVBoxLayout>

#include "model_download/hub_download.h"
#include "model_info.h"

namespace quire::ui {

namespace {
QString megabytes(qint64 b) { return QLocale().toString(double(b) / 1e6, 'f', 1) + " MB"; }
QString duration(double s) {
    if (s < 0) return QObject::tr("working it out");
    if (s < 90) return QObject::tr("%1 s").arg(s, 0, 'f', 0);
    if (s < 5400) return QObject::tr("%1 min").arg(s / 60, 0, 'f', 0);
    return QObject::tr("%1 h").arg(s / 3600, 0, 'f', 1);
}
}  // namespace

ModelDownloadDialog::ModelDownloadDialog(const QString& modelsDir, QWidget* parent) : QDialog(parent), modelsDir_(modelsDir) {
    setWindowTitle(tr("Get a model"));
    repo_ = new QLineEdit("openbmb/MiniCPM-SALA", this);
    folder_ = new QLineEdit(this);
    auto* browse = new QPushButton(tr("Choose…"), this);
    auto* folderRow = new QHBoxLayout;
    folderRow->addWidget(folder_, 1);
    folderRow->addWidget(browse);
    endpoint_ = new QLabel(tr("From %1 (HF_ENDPOINT changes it). Models live in %2.").arg(app::defaultHubEndpoint(), modelsDir), this);
    endpoint_->setWordWrap(true);
    bar_ = new QProgressBar(this);
    bar_->setRange(0, 1000);
    bar_->setValue(0);
    status_ = new QLabel(tr("The whole repository is fetched; an interrupted download resumes where it stopped."), this);
    status_->setWordWrap(true);
    status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    download_ = new QPushButton(tr("Download"), this);
    cancel_ = new QPushButton(tr("Cancel"), this);
    cancel_->setEnabled(false);
    use_ = new QPushButton(tr("Use this model"), this);
    use_->setEnabled(false);
    auto* close = new QPushButton(tr("Close"), this);
    auto* buttons = new QHBoxLayout;
    buttons->addStretch();
    buttons->addWidget(download_);
    buttons->addWidget(cancel_);
    buttons->addWidget(use_);
    buttons->addWidget(close);
    auto* form = new QFormLayout;
    form->addRow(tr("Repository"), repo_);
    form->addRow(tr("Into folder"), folderRow);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(endpoint_);
    layout->addWidget(bar_);
    layout->addWidget(status_);
    layout->addLayout(buttons);
    resize(640, 260);
    setRepository(repo_->text());

    connect(repo_, &QLineEdit::textEdited, this, [this](const QString& r) {
        if (!r.contains('/')) return;
        folder_->setText(QDir(modelsDir_).filePath(r.section('/', -1)));
    });
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Download into"), modelsDir_);
        if (!dir.isEmpty()) folder_->setText(dir);
    });
    connect(download_, &QPushButton::clicked, this, &ModelDownloadDialog::start);
    connect(cancel_, &QPushButton::clicked, this, &ModelDownloadDialog::cancel);
    connect(use_, &QPushButton::clicked, this, &QDialog::accept);
    connect(close, &QPushButton::clicked, this, &QDialog::reject);
}

ModelDownloadDialog::~ModelDownloadDialog() {
    if (thread_) {
        cancelFlag_ = true;
        thread_->wait();
    }
}

void ModelDownloadDialog::setRepository(const QString& repo) {
    repo_->setText(repo);
    folder_->setText(QDir(modelsDir_).filePath(repo.section('/', -1)));
}

void ModelDownloadDialog::setFolder(const QString& dir) { folder_->setText(dir); }
QString ModelDownloadDialog::statusText() const { return status_->text(); }
void ModelDownloadDialog::cancel() { cancelFlag_ = true; }

void ModelDownloadDialog::start() {
    if (thread_) return;
    cancelFlag_ = false;
    done_.clear();
    app::DownloadOptions o;
    o.repo = repo_->text().trimmed();
    o.targetDir = folder_->text().trimmed();
    o.cancel = &cancelFlag_;
    download_->setEnabled(false);
    cancel_->setEnabled(true);
    use_->setEnabled(false);
    status_->setText(tr("Asking %1 for the files of %2…").arg(app::defaultHubEndpoint(), o.repo));
    // The download runs on its own thread (its own network manager); progress comes back queued.
    thread_ = QThread::create([this, o]() mutable {
        o.onProgress = [this](const app::DownloadProgress& p) {
            QMetaObject::invokeMethod(this, [p, this] { showProgress(p); }, Qt::QueuedConnection);
        };
        auto r = app::downloadModel(o);
        QString message, dir = o.targetDir;
        bool ok = r.is_ok();
        if (ok) {
            const ModelReport report = inspect_model(dir.toStdString());
            ok = report.ok();
            message = ok ? tr("Downloaded %1 files (%2), %3 already there. The model is ready to use.")
                               .arg(r->fetched.size()).arg(megabytes(r->bytesFetched)).arg(r->alreadyThere.size())
                         : tr("Downloaded, but the folder is not a usable model:\n%1").arg(QString::fromStdString(format_model_report(report)));
        } else {
            message = QString::fromStdString(r.status().message());
        }
        QMetaObject::invokeMethod(this, [=, this] { onFinished(ok, message, dir); }, Qt::QueuedConnection);
    });
    thread_->start();
}

void ModelDownloadDialog::showProgress(const app::DownloadProgress& p) {
    bar_->setValue(p.total > 0 ? static_cast<int>(1000 * p.done / p.total) : 0);
    status_->setText(tr("%1: %2 of %3\nAll files: %4 of %5 · %6/s · about %7 left")
                         .arg(p.file, megabytes(p.fileDone), megabytes(p.fileSize), megabytes(p.done), megabytes(p.total),
                              megabytes(qint64(p.bytesPerSecond)), duration(p.etaSeconds)));
}

void ModelDownloadDialog::onFinished(bool ok, const QString& message, const QString& dir) {
    thread_->wait();
    delete thread_;
    thread_ = nullptr;
    download_->setEnabled(true);
    download_->setText(ok ? tr("Download") : tr("Resume"));
    cancel_->setEnabled(false);
    if (ok) {
        done_ = dir;
        bar_->setValue(1000);
    }
    use_->setEnabled(ok);
    status_->setText(message);
    emit finished(ok, message);
}

}  // namespace quire::ui
