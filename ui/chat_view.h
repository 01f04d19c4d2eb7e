#pragma once
// The conversation: questions and answers rendered as Markdown (code blocks, lists, tables), the
// answer being written streams in, thinking can be shown or collapsed, each answer carries its
// first-token time and speed. Below it the composer.

#include <QWidget>

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
    };
    void setTurns(const QList<Turn>& turns);
    void beginAnswer(const QString& question);
    void appendToAnswer(const QString& delta);
    void finishAnswer(const QString& answer, const QString& stats);
    void setBusy(bool busy);
    QString transcriptText() const;
    QString lastAnswer() const;
    QString draft() const;
    void setDraft(const QString& text);
    bool thinkingEnabled() const;
    // Shows what has streamed in so far now, instead of at the next throttled render.
    void flush() { render(); }

signals:
    void sendRequested(const QString& question);
    void stopRequested();
    void exportRequested();

private:
    void render();
    QString markdownFor(const Turn& t) const;

    QTextBrowser* transcript_;
    QPlainTextEdit* composer_;
    QPushButton *send_, *stop_, *copy_, *export_;
    QCheckBox *think_, *showThinking_;
    QTimer* renderTimer_;
    QList<Turn> turns_;
    bool streaming_ = false;
};

}  // namespace quire::ui
