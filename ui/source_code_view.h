#pragma once
// A read-only view of a cited file at the cited line, the line marked and scrolled into view. The
// text is the file as Quire read it (from the library), so the line numbers are the ones the
// answer cited even if the file changed on disk since.

#include <QDialog>
#include <QStringList>

class QLabel;
class QPlainTextEdit;

namespace quire::ui {

class SourceCodeView : public QDialog {
    Q_OBJECT
public:
    explicit SourceCodeView(QWidget* parent = nullptr);

    void openAt(const QString& path, const QStringList& lines, int line);
    int markedLine() const { return marked_; }
    int cursorLine() const;
    QString lineText(int line) const;

private:
    QLabel* header_;
    QPlainTextEdit* text_;
    int marked_ = 0;
};

}  // namespace quire::ui
