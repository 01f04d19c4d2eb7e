#include "chat_view.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QDesktopServices>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QScrollBar>
#include <QShortcut>
#include <QTextBlock>
#include <QTextBrowser>
#include <QTimer>
#include <QVBoxLayout>

namespace quire::ui {

ChatView::ChatView(QWidget* parent) : QWidget(parent) {
    transcript_ = new QTextBrowser(this);
    transcript_->setOpenLinks(false);  // citation links open Quire's views; others the desktop's
    connect(transcript_, &QTextBrowser::anchorClicked, this, &ChatView::activateLink);
    transcript_->setPlaceholderText(tr("Ask a question about this library. The first question reads it; later ones start from the saved state."));
    composer_ = new QPlainTextEdit(this);
    composer_->setPlaceholderText(tr("Ask about the books and code in this library…  (Ctrl+Enter to send)"));
    composer_->setMaximumHeight(90);
    send_ = new QPushButton(tr("Send"), this);
    send_->setDefault(true);
    stop_ = new QPushButton(tr("Stop"), this);
    copy_ = new QPushButton(tr("Copy answer"), this);
    export_ = new QPushButton(tr("Export…"), this);
    think_ = new QCheckBox(tr("Think first"), this);
    think_->setToolTip(tr("Let the model reason in a <think> block before answering"));
    showThinking_ = new QCheckBox(tr("Show thinking"), this);
    stop_->setEnabled(false);

    auto* buttons = new QHBoxLayout;
    buttons->addWidget(think_);
    buttons->addWidget(showThinking_);
    buttons->addStretch();
    buttons->addWidget(copy_);
    buttons->addWidget(export_);
    buttons->addWidget(stop_);
    buttons->addWidget(send_);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(transcript_, 1);
    layout->addWidget(composer_);
    layout->addLayout(buttons);

    renderTimer_ = new QTimer(this);
    renderTimer_->setSingleShot(true);
    renderTimer_->setInterval(60);  // re-render a streaming answer at most ~16 times a second
    connect(renderTimer_, &QTimer::timeout, this, &ChatView::render);
    connect(send_, &QPushButton::clicked, this, [this] {
        const QString q = composer_->toPlainText().trimmed();
        if (!q.isEmpty()) emit sendRequested(q);
    });
    connect(stop_, &QPushButton::clicked, this, &ChatView::stopRequested);
    connect(export_, &QPushButton::clicked, this, &ChatView::exportRequested);
    connect(copy_, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(lastAnswer()); });
    connect(showThinking_, &QCheckBox::toggled, this, &ChatView::render);
    auto* sendShortcut = new QShortcut(QKeySequence(Qt::CTRL | Qt::Key_Return), this);
    connect(sendShortcut, &QShortcut::activated, send_, &QPushButton::click);
    auto* stopShortcut = new QShortcut(QKeySequence(Qt::Key_Escape), this);
    connect(stopShortcut, &QShortcut::activated, stop_, &QPushButton::click);
}

namespace {
const QString kCiteScheme = "quire-cite";

// Markdown-escapes text that must show as written (labels, excerpts).
QString escaped(const QString& s) {
    QString out;
    out.reserve(s.size() + 8);
    for (const QChar ch : s) {
        if (QStringLiteral("\\`*_[]<>#|").contains(ch)) out += '\\';
        out += ch;
    }
    return out;
}
}  // namespace

void ChatView::setCitationIndex(std::shared_ptr<const app::CitationIndex> index) {
    citations_ = std::move(index);
    render();
}

QString ChatView::withCitationLinks(const QString& answer) {
    if (!citations_) return answer;
    const QList<app::Citation> found = citations_->find(answer);
    if (found.isEmpty()) return answer;
    QString out = answer;
    QStringList seen;
    QString sources;
    for (qsizetype i = found.size() - 1; i >= 0; --i) {
        const app::Citation& c = found[i];
        const qsizetype n = shown_.size();
        shown_.append(c);
        out.replace(c.start, c.length, QString("[%1](%2:%3)").arg(escaped(c.label), kCiteScheme).arg(n));
    }
    for (const app::Citation& c : found) {
        if (seen.contains(c.label)) continue;
        seen << c.label;
        const qsizetype n = shown_.size();
        shown_.append(c);
        QString excerpt = c.excerpt.simplified();
        if (excerpt.size() > 140) excerpt = excerpt.left(140) + "…";
        sources += QString("- [%1](%2:%3) — %4\n").arg(escaped(c.label), kCiteScheme).arg(n).arg(escaped(excerpt));
    }
    return out + "\n\n**Sources**\n\n" + sources;
}

void ChatView::activateLink(const QUrl& url) {
    if (url.scheme() != kCiteScheme) {
        QDesktopServices::openUrl(url);
        return;
    }
    bool ok = false;
    const int n = url.path().toInt(&ok);
    if (ok && n >= 0 && n < shown_.size()) emit citationActivated(shown_[n]);
}

QList<QPair<QString, QUrl>> ChatView::links() const {
    QList<QPair<QString, QUrl>> out;
    for (QTextBlock b = transcript_->document()->begin(); b.isValid(); b = b.next())
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextFragment f = it.fragment();
            if (f.isValid() && f.charFormat().isAnchor()) out.append({f.text(), QUrl(f.charFormat().anchorHref())});
        }
    return out;
}

QString ChatView::markdownFor(const Turn& t) {
    QString answer = t.answer;
    // Thinking is shown collapsed unless asked for: the answer is what follows </think>.
    static const QRegularExpression think("<think>(.*?)(</think>|$)", QRegularExpression::DotMatchesEverythingOption);
    const auto m = think.match(answer);
    if (m.hasMatch()) {
        const int words = static_cast<int>(m.captured(1).split(QRegularExpression("\\s+"), Qt::SkipEmptyParts).size());
        const QString folded = showThinking_->isChecked()
                                   ? "> **Thinking**\n>\n> " + m.captured(1).trimmed().replace("\n", "\n> ") + "\n\n"
                                   : QString("> *Thought for %1 words (tick “Show thinking” to read)*\n\n").arg(words);
        answer.replace(m.capturedStart(), m.capturedLength(), folded);
    }
    QString md = "#### " + t.question.toHtmlEscaped() + "\n\n" + (answer.trimmed().isEmpty() ? QString("*…*") : withCitationLinks(answer)) + "\n\n";
    if (!t.stats.isEmpty()) md += "<small>" + t.stats + "</small>\n\n";
    return md + "---\n\n";
}

void ChatView::render() {
    shown_.clear();
    QString md;
    for (const Turn& t : turns_) md += markdownFor(t);
    QScrollBar* bar = transcript_->verticalScrollBar();
    const bool atEnd = bar->value() >= bar->maximum() - 4;
    transcript_->setMarkdown(md);
    if (atEnd || streaming_) bar->setValue(bar->maximum());
}

void ChatView::setTurns(const QList<Turn>& turns) {
    turns_ = turns;
    render();
}

void ChatView::beginAnswer(const QString& question) {
    turns_.append({question, QString(), QString()});
    streaming_ = true;
    composer_->clear();
    render();
}

void ChatView::appendToAnswer(const QString& delta) {
    if (turns_.isEmpty()) return;
    turns_.last().answer += delta;
    if (!renderTimer_->isActive()) renderTimer_->start();
}

void ChatView::finishAnswer(const QString& answer, const QString& stats) {
    if (turns_.isEmpty()) return;
    turns_.last().answer = answer;
    turns_.last().stats = stats;
    streaming_ = false;
    renderTimer_->stop();
    render();
}

void ChatView::setBusy(bool busy) {
    send_->setEnabled(!busy);
    stop_->setEnabled(busy);
}

QString ChatView::transcriptText() const { return transcript_->toPlainText(); }
QString ChatView::lastAnswer() const { return turns_.isEmpty() ? QString() : turns_.last().answer; }
QString ChatView::draft() const { return composer_->toPlainText(); }
void ChatView::setDraft(const QString& text) { composer_->setPlainText(text); }
bool ChatView::thinkingEnabled() const { return think_->isChecked(); }

}  // namespace quire::ui
