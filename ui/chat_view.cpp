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

    feedback_ = new QLabel(this);
    feedback_->setForegroundRole(QPalette::PlaceholderText);
    feedbackTimer_ = new QTimer(this);
    feedbackTimer_->setSingleShot(true);
    feedbackTimer_->setInterval(2500);
    connect(feedbackTimer_, &QTimer::timeout, feedback_, &QLabel::clear);
    copy_->setEnabled(false);
    export_->setEnabled(false);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(think_);
    buttons->addWidget(showThinking_);
    buttons->addStretch();
    buttons->addWidget(feedback_);
    buttons->addWidget(copy_);
    buttons->addWidget(export_);
    buttons->addWidget(stop_);
    buttons->addWidget(send_);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(transcript_, 1);
    blockedLabel_ = new QLabel(this);
    blockedLabel_->setWordWrap(true);
    blockedLabel_->setStyleSheet("QLabel { color: #c0392b; }");
    blockedLabel_->hide();
    layout->addWidget(blockedLabel_);
    layout->addWidget(composer_);
    layout->addLayout(buttons);

    renderTimer_ = new QTimer(this);
    renderTimer_->setSingleShot(true);
    renderTimer_->setInterval(60);  // re-render a streaming answer at most ~16 times a second
    connect(renderTimer_, &QTimer::timeout, this, &ChatView::render);
    connect(send_, &QPushButton::clicked, this, [this] {
        const QString q = composer_->toPlainText().trimmed();
        if (!q.isEmpty() && blocked_.isEmpty()) emit sendRequested(q);
    });
    connect(stop_, &QPushButton::clicked, this, &ChatView::stopRequested);
    connect(export_, &QPushButton::clicked, this, &ChatView::exportRequested);
    connect(copy_, &QPushButton::clicked, this, [this] { copyText(lastAnswer(), tr("the answer")); });
    connect(showThinking_, &QCheckBox::toggled, this, &ChatView::render);
    auto* sendShortcut = new QShortcut(QKeySequence(Qt::CTRL | Qt::Key_Return), this);
    connect(sendShortcut, &QShortcut::activated, send_, &QPushButton::click);
    auto* stopShortcut = new QShortcut(QKeySequence(Qt::Key_Escape), this);
    connect(stopShortcut, &QShortcut::activated, stop_, &QPushButton::click);
}

namespace {
const QString kCiteScheme = "quire-cite";
const QString kActionScheme = "quire-action";  // copy/N, regenerate/N, code/N/M

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

void ChatView::copyText(const QString& text, const QString& what) {
    QApplication::clipboard()->setText(text);
    feedback_->setText(tr("Copied %1").arg(what));
    feedbackTimer_->start();
}

QString ChatView::feedbackText() const { return feedback_->text(); }
bool ChatView::copyEnabled() const { return copy_->isEnabled(); }
bool ChatView::exportEnabled() const { return export_->isEnabled(); }

namespace {
// The fenced code blocks of an answer: (where the closing fence ends, the code).
QList<QPair<qsizetype, QString>> codeBlocks(const QString& text) {
    static const QRegularExpression fence("```[^\\n]*\\n(.*?)```", QRegularExpression::DotMatchesEverythingOption);
    QList<QPair<qsizetype, QString>> out;
    for (auto it = fence.globalMatch(text); it.hasNext();) {
        const auto m = it.next();
        out.append({m.capturedEnd(), m.captured(1)});
    }
    return out;
}
}  // namespace

QString ChatView::withCodeCopyLinks(const QString& answer, int turn) {
    const auto blocks = codeBlocks(answer);
    QString out = answer;
    for (qsizetype i = blocks.size() - 1; i >= 0; --i)
        out.insert(blocks[i].first, QString("\n\n[Copy code](%1:code/%2/%3)\n").arg(kActionScheme).arg(turn).arg(i));
    return out;
}

void ChatView::activateLink(const QUrl& url) {
    if (url.scheme() == kActionScheme) {
        const QStringList parts = url.path().split('/');
        const int turn = parts.value(1).toInt();
        if (turn < 0 || turn >= turns_.size()) return;
        if (parts.value(0) == "copy") copyText(turns_[turn].answer, tr("the answer"));
        else if (parts.value(0) == "regenerate" && !streaming_) {
            const QString question = turns_[turn].question;  // a copy: the receiver may clear the turns
            emit regenerateRequested(question);
        }
        else if (parts.value(0) == "code") {
            const auto blocks = codeBlocks(turns_[turn].answer);
            const int i = parts.value(2).toInt();
            if (i >= 0 && i < blocks.size()) copyText(blocks[i].second, tr("the code"));
        }
        return;
    }
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
    QString md = "#### " + t.question.toHtmlEscaped() + "\n\n" + (answer.trimmed().isEmpty() ? QString("*…*") : withCitationLinks(withCodeCopyLinks(answer, static_cast<int>(&t - turns_.constData())))) + "\n\n";
    if (t.stopped) md += "**⏹ stopped** — the answer was cut short\n\n";
    const int index = static_cast<int>(&t - turns_.constData());
    if (!t.answer.trimmed().isEmpty() && !(streaming_ && index == turns_.size() - 1)) {
        md += QString("[Copy](%1:copy/%2)").arg(kActionScheme).arg(index);
        if (index == turns_.size() - 1) md += QString(" · [Regenerate](%1:regenerate/%2)").arg(kActionScheme).arg(index);
        md += "\n\n";
    }
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
    const bool answered = !turns_.isEmpty() && !lastAnswer().trimmed().isEmpty();
    copy_->setEnabled(answered && !streaming_);
    export_->setEnabled(answered && !streaming_);
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

void ChatView::beginRegenerate() {
    if (turns_.isEmpty()) return;
    turns_.last().answer.clear();
    turns_.last().stats.clear();
    turns_.last().stopped = false;
    streaming_ = true;
    render();
}

void ChatView::appendToAnswer(const QString& delta) {
    if (turns_.isEmpty()) return;
    turns_.last().answer += delta;
    if (!renderTimer_->isActive()) renderTimer_->start();
}

void ChatView::finishAnswer(const QString& answer, const QString& stats, bool stopped) {
    if (turns_.isEmpty()) return;
    turns_.last().answer = answer;
    turns_.last().stats = stats;
    turns_.last().stopped = stopped;
    streaming_ = false;
    renderTimer_->stop();
    render();
}

void ChatView::setBusy(bool busy) {
    busy_ = busy;
    send_->setEnabled(!busy && blocked_.isEmpty());
    stop_->setEnabled(busy);
}

void ChatView::setBlockedReason(const QString& reason) {
    blocked_ = reason;
    send_->setEnabled(!busy_ && blocked_.isEmpty());
    send_->setToolTip(reason);
    blockedLabel_->setText(reason);
    blockedLabel_->setVisible(!reason.isEmpty());
}

bool ChatView::sendEnabled() const { return send_->isEnabled(); }
QString ChatView::sendToolTip() const { return send_->toolTip(); }

QString ChatView::transcriptText() const { return transcript_->toPlainText(); }
QString ChatView::lastAnswer() const { return turns_.isEmpty() ? QString() : turns_.last().answer; }
QString ChatView::draft() const { return composer_->toPlainText(); }
void ChatView::setDraft(const QString& text) { composer_->setPlainText(text); }
bool ChatView::thinkingEnabled() const { return think_->isChecked(); }

}  // namespace quire::ui
