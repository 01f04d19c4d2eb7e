#pragma once
// Quire's window: libraries on the left; the selected library's sources, context gauge, saved-state
// status and reading progress in the middle; its chats on the right. All engine work runs on
// EngineWorker's thread.

#include <QHash>
#include <QMainWindow>
#include <QPointer>
#include <QThread>

#include <memory>

#include "engine_worker.h"
#include "library/library_db.h"
#include "session/citations.h"

class QComboBox;
class QLabel;
class QListView;
class QProgressBar;
class QPushButton;
class QTableView;

namespace quire::ui {

class ChatView;
class ChatListModel;
class ContextGauge;
class LibraryListModel;
class PdfPageView;
class SourceCodeView;
class LocalServer;
class SourceTableModel;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // dataDir holds library.sqlite and states/; helperProgram is the quire executable (PDF reader).
    MainWindow(const QString& dataDir, const QString& helperProgram, QWidget* parent = nullptr);
    ~MainWindow() override;

    // The actions a person takes, also used by tests and the screenshot tour.
    qint64 createLibrary(const QString& name);
    void selectLibrary(qint64 id);
    void addSources(const QStringList& paths, const QString& password = {});
    void readLibrary();
    void ask(const QString& question);
    // The chat's last answer written again in its place (Regenerate).
    void regenerate(const QString& question);
    void stop();
    void newChat();
    bool exportChat(const QString& path);
    void openSettings();
    // Rename or delete (with its chats and saved states, files removed from disk); false with a
    // message in the status bar when refused (busy, a name taken, …). The window's actions confirm first.
    bool renameLibrary(qint64 id, const QString& name);
    bool deleteLibrary(qint64 id);
    bool renameChat(qint64 chatId, const QString& title);
    bool deleteChat(qint64 chatId);
    // Opens what a citation points at: a PDF page in the page view (or the system viewer, as set in
    // Settings), a file at the line in the code view.
    void openCitation(const app::Citation& citation);

    qint64 currentLibrary() const { return libraryId_; }
    qint64 currentChat() const { return chatId_; }
    bool busy() const { return busy_; }
    bool modelReady() const { return modelReady_; }
    bool demoMode() const { return demo_; }
    ChatView* chatView() const { return chat_; }
    LibraryListModel* libraryModel() const { return libraries_; }
    SourceTableModel* sourceModel() const { return sources_; }
    ChatListModel* chatModel() const { return chats_; }
    EngineWorker* worker() const { return worker_; }
    LocalServer* localServer() const { return server_; }
    // Starts or stops "Serve on localhost" as the settings say.
    void applyServeSettings();
    QString stateText() const;
    QString modelLineText() const;  // the status bar's model line
    QString readOnlyText() const;   // the status bar's read-only notice, empty when the library can be changed
    QString progressText() const;   // the reading / answering line under the gauge
    QString problem() const { return problem_; }  // why Send is disabled, or empty
    ContextGauge* gauge() const { return gauge_; }
    PdfPageView* pageView() const;
    SourceCodeView* codeView() const;

signals:
    void busyChanged(bool busy);
    void modelReadyChanged(bool ready);
    void answerDone(qint64 chatId, qint64 computedTokens);
    void readDone(bool ok);
    void sourcesDone();

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void showReadOnly();  // the status bar's read-only notice, shown or taken away as the library database is now
    void askWith(const QString& question, bool replaceLast);
    void buildUi();
    void connectWorker();
    void loadModel();
    void setBusy(bool busy, const QString& what = {});
    void showChat(qint64 chatId);
    void ensureDemoLibrary();
    void refreshCitations();
    QString lastFolder() const;  // where the file dialogs open: the folder used last
    void rememberFolder(const QString& dir);
    template <typename F>
    void onWorker(F&& f);

    std::unique_ptr<app::LibraryDb> db_;
    QString dataDir_, helperProgram_;
    QThread thread_;
    EngineWorker* worker_ = nullptr;
    LocalServer* server_ = nullptr;
    LibraryListModel* libraries_ = nullptr;
    SourceTableModel* sources_ = nullptr;
    ChatListModel* chats_ = nullptr;

    QListView* libraryView_ = nullptr;
    QTableView* sourceView_ = nullptr;
    QLabel *libraryTitle_ = nullptr, *banner_ = nullptr, *stateLabel_ = nullptr, *largest_ = nullptr, *progressLabel_ = nullptr;
    ContextGauge* gauge_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QPushButton *readButton_ = nullptr, *cancelButton_ = nullptr, *addFiles_ = nullptr, *addFolder_ = nullptr, *remove_ = nullptr;
    QComboBox* chatPicker_ = nullptr;
    ChatView* chat_ = nullptr;
    std::shared_ptr<const app::CitationIndex> citationIndex_;
    QPointer<PdfPageView> pageView_;
    QPointer<SourceCodeView> codeView_;

    QLabel *modelLine_ = nullptr, *problemLabel_ = nullptr, *readOnlyLine_ = nullptr;
    QString problem_;
    qint64 answeringLibrary_ = 0;   // the library the answer being written belongs to
    bool regenerating_ = false;     // the answer being written replaces the chat's last one
    bool streamingInView_ = false;  // the answer being written is the chat view's last turn
    QHash<qint64, qint64> lastChat_;  // library -> the chat it was on
    qint64 libraryId_ = 0, chatId_ = 0;
    qint64 contextTokens_ = 0;
    QString pendingQuestion_;
    bool busy_ = false, modelReady_ = false, demo_ = false;
};

}  // namespace quire::ui
