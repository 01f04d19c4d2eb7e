#include "source_code_view.h"

#include <QFontDatabase>
#include <QLabel>
#include <QPlainTextEdit>
#include <QTextBlock>
#include <QVBoxLayout>

namespace quire::ui {

SourceCodeView::SourceCodeView(QWidget* parent) : QDialog(parent) {
    setAttribute(Qt::WA_DeleteOnClose);
    header_ = new QLabel(this);
    header_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    text_ = new QPlainTextEdit(this);
    text_->setReadOnly(true);
    text_->setLineWrapMode(QPlainTextEdit::NoWrap);
    text_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(header_);
    layout->addWidget(text_, 1);
    resize(820, 640);
}

void SourceCodeView::openAt(const QString& path, const QStringList& lines, int line) {
    setWindowTitle(tr("%1 — line %2").arg(path).arg(line));
    header_->setText(tr("%1, line %2 of %3 (as read into the library)").arg(path).arg(line).arg(lines.size()));
    // Line numbers in a gutter would need a custom widget; a fixed-width number column does it.
    QStringList numbered;
    const int width = static_cast<int>(QString::number(lines.size()).size());
    for (int i = 0; i < lines.size(); ++i) numbered << QString("%1  %2").arg(i + 1, width).arg(lines[i]);
    text_->setPlainText(numbered.join('\n'));
    marked_ = line;
    const QTextBlock block = text_->document()->findBlockByNumber(line - 1);
    QTextCursor cursor(block);
    text_->setTextCursor(cursor);
    QTextEdit::ExtraSelection mark;
    mark.cursor = cursor;
    mark.format.setBackground(palette().color(QPalette::Highlight).lighter(160));
    mark.format.setForeground(palette().color(QPalette::Text));
    mark.format.setProperty(QTextFormat::FullWidthSelection, true);
    text_->setExtraSelections({mark});
    text_->centerCursor();
}

int SourceCodeView::cursorLine() const { return text_->textCursor().blockNumber() + 1; }

QString SourceCodeView::lineText(int line) const {
    const QTextBlock b = text_->document()->findBlockByNumber(line - 1);
    return b.isValid() ? b.text() : QString();
}

}  // namespace quire::ui
