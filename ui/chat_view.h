#pragma once
// The conversation: questions and answers rendered as Markdown (code blocks, lists, tables), the
// answer being written streams in, thinking can be shown or collapsed, each answer carries its
// first-token time and speed. Citations in an answer (session/citations.h) become links and are
// collected under the answer as its sources; activating one emits citationActivated. Below it the
// composer.

#include <QUrl>
#include <QWidget>

#include <memory>

#include "session/citations.h"

class QCheckBox;
class QLabel;
class QPlainTextEdit;
class QPushButton;
class QTextBrowser;
class QTimer;

namespace quire::ui {

class ChatView : public QWidget {
    Q_OBJECT
public:
    explicit ChatView(QWidget* parent = nullptr);

    struct Turn {
        QString question;
        QString answer;
        QString stats;  // "first token 0.02 s · 740 tokens/s"
        bool stopped = false;
    };
    void setTurns(const QList<Turn>& turns);
    void beginAnswer(const QString& question);
    // Regenerate: the last turn's answer is written again in place (its question kept).
    void beginRegenerate();
    void appendToAnswer(const QString& delta);
    // stopped: the answer was cut short by Stop; it carries a "stopped" mark.
    void finishAnswer(const QString& answer, const QString& stats, bool stopped = false);
    void setBusy(bool busy);
    // Why nothing can be asked (Send disabled, the reason shown and in its tooltip); empty: can ask.
    void setBlockedReason(const QString& reason);
    bool sendEnabled() const;
    QString sendToolTip() const;
    QString feedbackText() const;  // "Copied …" for a moment after a copy
    bool copyEnabled() const;
    bool exportEnabled() const;
    QString transcriptText() const;
    QString lastAnswer() const;
    QString draft() const;
    void setDraft(const QString& text);
    bool thinkingEnabled() const;
    // Shows what has streamed in so far now, instead of at the next throttled render.
    void flush() { render(); }
    // The library's sources that citations resolve against (null: no links).
    void setCitationIndex(std::shared_ptr<const app::CitationIndex> index);
    // The links of the transcript as shown (text, target), citations and sources included.
    QList<QPair<QString, QUrl>> links() const;
    // Follows a link as a click would.
    void activateLink(const QUrl& url);

signals:
    void sendRequested(const QString& question);
    void stopRequested();
    void exportRequested();
    void citationActivated(const quire::app::Citation& citation);
    void regenerateRequested(const QString& question);

private:
    void render();
    QString markdownFor(const Turn& t);
    QString withCitationLinks(const QString& answer);
    QString withCodeCopyLinks(const QString& answer, int turn);
    void copyText(const QString& text, const QString& what);

    QTextBrowser* transcript_;
    QPlainTextEdit* composer_;
    QPushButton *send_, *stop_, *copy_, *export_;
    QCheckBox *think_, *showThinking_;
    QTimer* renderTimer_;
    QList<Turn> turns_;
    bool streaming_ = false, busy_ = false;
    QString blocked_;
    QLabel *blockedLabel_, *feedback_;
    QTimer* feedbackTimer_;
    std::shared_ptr<const app::CitationIndex> citations_;
    QList<app::Citation> shown_;  // the citations linked in the transcript; a link's target is its index
};

}  // namespace quire::ui
