#pragma once
// Quire's own page view for a cited PDF page: poppler (Qt 6 binding) renders the page, the page
// number and count are shown, the neighbouring pages are a click away, and "Open in system viewer"
// hands the file to the desktop's PDF viewer instead.

#include <QDialog>
#include <QImage>

#include <memory>

class QLabel;
class QPushButton;
class QScrollArea;

namespace Poppler {
class Document;
}

namespace quire::ui {

class PdfPageView : public QDialog {
    Q_OBJECT
public:
    explicit PdfPageView(QWidget* parent = nullptr);
    ~PdfPageView() override;

    // Opens `path` at `page` (1-based); false (with the reason shown in the view) if it cannot.
    bool openPage(const QString& path, int page);
    void showPage(int page);

    int currentPage() const { return page_; }
    int pageCount() const;
    QImage renderedImage() const { return image_; }
    QString pageLabelText() const;
    QString errorText() const;

private:
    std::unique_ptr<Poppler::Document> doc_;
    QString path_;
    int page_ = 0;
    QImage image_;
    QLabel *pageLabel_, *image_label_, *error_;
    QScrollArea* scroll_;
    QPushButton *prev_, *next_, *system_;
};

}  // namespace quire::ui
