#pragma once
// "Get model": downloads a model from the Hugging Face Hub (app/model_download/hub_download.h) on a
// thread of its own, with the file, bytes, speed and ETA shown, Cancel (what was fetched is kept
// and the next Download resumes), and the folder where models live. When it is done the folder is
// checked like Settings' model folder and offered as the model.

#include <QDialog>

#include <atomic>

class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QThread;

namespace quire::app {
struct DownloadProgress;
}

namespace quire::ui {

class ModelDownloadDialog : public QDialog {
    Q_OBJECT
public:
    // modelsDir: where models live (DATA/models); the folder defaults to modelsDir/NAME.
    explicit ModelDownloadDialog(const QString& modelsDir, QWidget* parent = nullptr);
    ~ModelDownloadDialog() override;

    void setRepository(const QString& repo);
    void setFolder(const QString& dir);
    void start();
    void cancel();
    bool running() const { return thread_ != nullptr; }
    // The downloaded, checked model folder once done; empty before.
    QString downloadedModel() const { return done_; }
    QString statusText() const;
    // Shows a download's progress (called from the download thread through the event loop).
    void showProgress(const app::DownloadProgress& p);

signals:
    void finished(bool ok, const QString& message);

private:
    void onFinished(bool ok, const QString& message, const QString& dir);

    QString modelsDir_;
    QLineEdit *repo_, *folder_;
    QLabel *endpoint_, *status_;
    QProgressBar* bar_;
    QPushButton *download_, *cancel_, *use_;
    QThread* thread_ = nullptr;
    std::atomic<bool> cancelFlag_{false};
    QString done_;
};

}  // namespace quire::ui
