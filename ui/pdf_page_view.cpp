#include "pdf_page_view.h"

#include <QDesktopServices>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QScreen>
#include <QScrollArea>
#include <QScrollBar>
#include <QUrl>
#include <QVBoxLayout>

#include <poppler-qt6.h>

namespace quire::ui {

PdfPageView::PdfPageView(QWidget* parent) : QDialog(parent) {
    setAttribute(Qt::WA_DeleteOnClose);
    pageLabel_ = new QLabel(this);
    error_ = new QLabel(this);
    error_->setWordWrap(true);
    error_->hide();
    image_label_ = new QLabel(this);
    image_label_->setAlignment(Qt::AlignHCenter | Qt::AlignTop);
    scroll_ = new QScrollArea(this);
    scroll_->setWidget(image_label_);
    scroll_->setWidgetResizable(true);
    prev_ = new QPushButton(tr("Previous page"), this);
    next_ = new QPushButton(tr("Next page"), this);
    system_ = new QPushButton(tr("Open in system viewer"), this);
    auto* row = new QHBoxLayout;
    row->addWidget(pageLabel_, 1);
    row->addWidget(prev_);
    row->addWidget(next_);
    row->addWidget(system_);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(row);
    layout->addWidget(error_);
    layout->addWidget(scroll_, 1);
    resize(720, 900);
    connect(prev_, &QPushButton::clicked, this, [this] { showPage(page_ - 1); });
    connect(next_, &QPushButton::clicked, this, [this] { showPage(page_ + 1); });
    connect(system_, &QPushButton::clicked, this, [this] { QDesktopServices::openUrl(QUrl::fromLocalFile(path_)); });
}

PdfPageView::~PdfPageView() = default;

int PdfPageView::pageCount() const { return doc_ ? doc_->numPages() : 0; }
QString PdfPageView::pageLabelText() const { return pageLabel_->text(); }
QString PdfPageView::errorText() const { return error_->isHidden() ? QString() : error_->text(); }

bool PdfPageView::openPage(const QString& path, int page) {
    path_ = path;
    setWindowTitle(tr("%1 — page %2").arg(QFileInfo(path).fileName()).arg(page));
    doc_ = Poppler::Document::load(path);
    QString problem;
    if (!doc_) problem = tr("%1 cannot be opened (moved, deleted or damaged since it was read).").arg(path);
    else if (doc_->isLocked()) problem = tr("%1 is encrypted; open it in the system viewer to see page %2.").arg(path).arg(page);
    if (!problem.isEmpty()) {
        doc_.reset();
        error_->setText(problem);
        error_->show();
        pageLabel_->setText(tr("Page %1").arg(page));
        prev_->setEnabled(false);
        next_->setEnabled(false);
        return false;
    }
    doc_->setRenderHint(Poppler::Document::Antialiasing);
    doc_->setRenderHint(Poppler::Document::TextAntialiasing);
    error_->hide();
    showPage(page);
    return page_ == page;
}

void PdfPageView::showPage(int page) {
    if (!doc_ || page < 1 || page > doc_->numPages()) return;
    std::unique_ptr<Poppler::Page> p(doc_->page(page - 1));
    if (!p) return;
    const qreal ratio = devicePixelRatioF();
    const double dpi = 110.0 * ratio;
    image_ = p->renderToImage(dpi, dpi);
    image_.setDevicePixelRatio(ratio);
    image_label_->setPixmap(QPixmap::fromImage(image_));
    page_ = page;
    pageLabel_->setText(tr("Page %1 of %2").arg(page).arg(doc_->numPages()));
    setWindowTitle(tr("%1 — page %2").arg(QFileInfo(path_).fileName()).arg(page));
    prev_->setEnabled(page > 1);
    next_->setEnabled(page < doc_->numPages());
    scroll_->verticalScrollBar()->setValue(0);  // the top of the cited page in view
}

}  // namespace quire::ui
