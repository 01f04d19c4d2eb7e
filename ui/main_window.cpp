#include "main_window.h"

#include <algorithm>
#include <QApplication>
#include <QComboBox>
#include <QDesktopServices>
#include <QDir>
#include <QDragEnterEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QListView>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QScreen>
#include <QPushButton>
#include <QShortcut>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QVBoxLayout>

#include "app_context.h"
#include "chat_view.h"
#include "context_gauge.h"
#include "models/chat_list_model.h"
#include "models/library_list_model.h"
#include "models/source_table_model.h"
#include "pdf_page_view.h"
#include "source_code_view.h"
#include "library/library_removal.h"
#include "session/chat_export.h"
#include "gpu_info.h"
#include "local_server.h"
#include "settings_dialog.h"

namespace quire::ui {

MainWindow::MainWindow(const QString& dataDir, const QString& helperProgram, QWidget* parent)
    : QMainWindow(parent), dataDir_(dataDir), helperProgram_(helperProgram) {
    QDir().mkpath(dataDir);
    auto db = app::LibraryDb::open(QDir(dataDir).filePath("library.sqlite"));
    if (!db) {
        QMessageBox::critical(nullptr, tr("Quire"), QString::fromStdString(db.status().message()));
        throw std::runtime_error(db.status().message());  // main() reports it; nothing was touched
    }
    db_ = std::move(db.value());
    libraries_ = new LibraryListModel(*db_, this);
    sources_ = new SourceTableModel(*db_, this);
    chats_ = new ChatListModel(*db_, this);
    worker_ = new EngineWorker(QDir(dataDir).filePath("library.sqlite"), QDir(dataDir).filePath("states"), helperProgram);
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    thread_.start();
    buildUi();
    connectWorker();
    setAcceptDrops(true);
    server_ = new LocalServer(helperProgram_, dataDir_, this);
    loadModel();
    applyServeSettings();
    if (libraries_->rowCount() > 0) selectLibrary(libraries_->idAt(0));
}

void MainWindow::applyServeSettings() {
    auto setting = [&](const char* key) {
        auto v = db_->setting(key);
        return v ? v.value() : QString();
    };
    if (setting("serve.enabled") != "1") return server_->stop();
    QStringList args;
    // The same device choice as the window's own engine.
    if (const GpuInfo gpus = probe_gpus(); gpus.device_count > 0)
        args << "--backend" << "cuda" << "--gpu" << QString::number(std::clamp(setting("gpu").toInt(), 0, gpus.device_count - 1));
    const int port = setting("serve.port").toInt();
    server_->start(port >= 1024 && port <= 65535 ? port : 8080, args);
}

MainWindow::~MainWindow() {
    worker_->requestShutdown();
    thread_.quit();
    thread_.wait();
}

template <typename F>
void MainWindow::onWorker(F&& f) {
    QMetaObject::invokeMethod(worker_, std::forward<F>(f), Qt::QueuedConnection);
}

void MainWindow::buildUi() {
    setWindowTitle(tr("Quire"));
    // The size it was designed for, but never more than the screen it opens on can show.
    QSize size(1320, 820);
    if (const QScreen* screen = QGuiApplication::primaryScreen())
        size = size.boundedTo(screen->availableGeometry().size() * 0.95);
    resize(size);

    banner_ = new QLabel(this);
    banner_->setWordWrap(true);
    banner_->setStyleSheet("QLabel { background: #fff4ce; color: #5c4400; padding: 6px 10px; border-bottom: 1px solid #e6d48a; }");
    banner_->hide();

    // Left: libraries.
    libraryView_ = new QListView(this);
    libraryView_->setModel(libraries_);
    libraryView_->setContextMenuPolicy(Qt::CustomContextMenu);
    libraryView_->setSelectionMode(QAbstractItemView::SingleSelection);
    connect(libraryView_, &QWidget::customContextMenuRequested, this, [this](const QPoint& at) {
        const QModelIndex i = libraryView_->indexAt(at);
        if (!i.isValid()) return;
        const qint64 id = libraries_->idAt(i.row());
        const QString name = libraries_->nameOf(id);
        QMenu menu(this);
        menu.addAction(tr("Rename…"), this, [this, id, name] {
            bool ok = false;
            const QString n = QInputDialog::getText(this, tr("Rename library"), tr("Name:"), QLineEdit::Normal, name, &ok);
            if (ok) renameLibrary(id, n);
        });
        menu.addAction(tr("Delete…"), this, [this, id, name] {
            if (QMessageBox::question(this, tr("Delete library"),
                                      tr("Delete the library “%1” with its chats and saved states? The files you added stay where they are.").arg(name)) ==
                QMessageBox::Yes)
                deleteLibrary(id);
        });
        menu.exec(libraryView_->viewport()->mapToGlobal(at));
    });
    auto* newLibrary = new QPushButton(tr("New library"), this);
    auto* settings = new QPushButton(tr("Settings"), this);
    auto* left = new QWidget(this);
    auto* leftLayout = new QVBoxLayout(left);
    auto* libsTitle = new QLabel(tr("<b>Libraries</b>"), this);
    leftLayout->addWidget(libsTitle);
    leftLayout->addWidget(libraryView_, 1);
    leftLayout->addWidget(newLibrary);
    leftLayout->addWidget(settings);

    // Middle: sources, context, reading.
    libraryTitle_ = new QLabel(this);
    QFont titleFont = libraryTitle_->font();  // a font, not a style sheet: it must follow theme changes
    titleFont.setPointSizeF(titleFont.pointSizeF() * 1.5);
    titleFont.setWeight(QFont::DemiBold);
    libraryTitle_->setFont(titleFont);
    sourceView_ = new QTableView(this);
    sourceView_->setModel(sources_);
    sourceView_->setSelectionBehavior(QAbstractItemView::SelectRows);
    sourceView_->verticalHeader()->hide();
    sourceView_->horizontalHeader()->setSectionResizeMode(SourceTableModel::NameColumn, QHeaderView::Stretch);
    sourceView_->horizontalHeader()->setSectionResizeMode(SourceTableModel::StatusColumn, QHeaderView::ResizeToContents);
    sourceView_->setAlternatingRowColors(true);
    addFiles_ = new QPushButton(tr("Add files…"), this);
    addFolder_ = new QPushButton(tr("Add folder…"), this);
    remove_ = new QPushButton(tr("Remove"), this);
    auto* sourceButtons = new QHBoxLayout;
    sourceButtons->addWidget(addFiles_);
    sourceButtons->addWidget(addFolder_);
    sourceButtons->addStretch();
    sourceButtons->addWidget(remove_);
    gauge_ = new ContextGauge(this);
    largest_ = new QLabel(this);
    largest_->setWordWrap(true);
    largest_->setForegroundRole(QPalette::PlaceholderText);
    stateLabel_ = new QLabel(this);
    progress_ = new QProgressBar(this);
    progress_->setTextVisible(false);
    progress_->setMaximumHeight(10);
    progressLabel_ = new QLabel(this);
    readButton_ = new QPushButton(tr("Read library"), this);
    cancelButton_ = new QPushButton(tr("Cancel"), this);
    cancelButton_->setEnabled(false);
    auto* readRow = new QHBoxLayout;
    readRow->addWidget(stateLabel_, 1);
    readRow->addWidget(readButton_);
    readRow->addWidget(cancelButton_);
    auto* middle = new QWidget(this);
    auto* midLayout = new QVBoxLayout(middle);
    midLayout->addWidget(libraryTitle_);
    midLayout->addWidget(sourceView_, 1);
    midLayout->addLayout(sourceButtons);
    midLayout->addWidget(new QLabel(tr("<b>Context</b>"), this));
    midLayout->addWidget(gauge_);
    problemLabel_ = new QLabel(this);
    problemLabel_->setWordWrap(true);
    problemLabel_->setStyleSheet("QLabel { color: #c0392b; }");
    problemLabel_->hide();
    midLayout->addWidget(problemLabel_);
    midLayout->addWidget(largest_);
    midLayout->addLayout(readRow);
    midLayout->addWidget(progress_);
    midLayout->addWidget(progressLabel_);

    // Right: chats.
    chatPicker_ = new QComboBox(this);
    chatPicker_->setModel(chats_);
    chatPicker_->setPlaceholderText(tr("New chat"));
    auto* newChatButton = new QPushButton(tr("New chat"), this);
    auto* chatMenuButton = new QPushButton(tr("Chat…"), this);
    auto* chatMenu = new QMenu(chatMenuButton);
    chatMenu->addAction(tr("Rename chat…"), this, [this] {
        if (!chatId_) return;
        bool ok = false;
        const QString title = QInputDialog::getText(this, tr("Rename chat"), tr("Title:"), QLineEdit::Normal, chatPicker_->currentText(), &ok);
        if (ok && !title.trimmed().isEmpty()) renameChat(chatId_, title);
    });
    chatMenu->addAction(tr("Delete chat…"), this, [this] {
        if (!chatId_) return;
        if (QMessageBox::question(this, tr("Delete chat"), tr("Delete the chat “%1” and its saved state?").arg(chatPicker_->currentText())) ==
            QMessageBox::Yes)
            deleteChat(chatId_);
    });
    chatMenuButton->setMenu(chatMenu);
    auto* chatRow = new QHBoxLayout;
    chatRow->addWidget(new QLabel(tr("<b>Chat</b>"), this));
    chatRow->addWidget(chatPicker_, 1);
    chatRow->addWidget(newChatButton);
    chatRow->addWidget(chatMenuButton);
    chat_ = new ChatView(this);
    auto* right = new QWidget(this);
    auto* rightLayout = new QVBoxLayout(right);
    rightLayout->addLayout(chatRow);
    rightLayout->addWidget(chat_, 1);

    auto* splitter = new QSplitter(this);
    splitter->addWidget(left);
    splitter->addWidget(middle);
    splitter->addWidget(right);
    splitter->setSizes({210, 480, 630});
    splitter->setChildrenCollapsible(false);
    auto* central = new QWidget(this);
    auto* centralLayout = new QVBoxLayout(central);
    centralLayout->setContentsMargins(0, 0, 0, 0);
    centralLayout->setSpacing(0);
    centralLayout->addWidget(banner_);
    centralLayout->addWidget(splitter, 1);
    setCentralWidget(central);
    modelLine_ = new QLabel(tr("Loading the model…"), this);
    statusBar()->addPermanentWidget(modelLine_);  // stays while passing messages come and go
    showReadOnly();

    connect(newLibrary, &QPushButton::clicked, this, [this] {
        const QString name = QInputDialog::getText(this, tr("New library"), tr("Name:"));
        if (!name.trimmed().isEmpty()) selectLibrary(createLibrary(name.trimmed()));
    });
    connect(settings, &QPushButton::clicked, this, &MainWindow::openSettings);
    connect(libraryView_->selectionModel(), &QItemSelectionModel::currentChanged, this,
            [this](const QModelIndex& i) { if (i.isValid()) selectLibrary(libraries_->idAt(i.row())); });
    connect(addFiles_, &QPushButton::clicked, this, [this] {
        const QStringList files = QFileDialog::getOpenFileNames(this, tr("Add PDFs or text files"), lastFolder(),
                                                                tr("Documents (*.pdf *.txt *.md);;All files (*)"));
        if (!files.isEmpty()) rememberFolder(QFileInfo(files.first()).absolutePath());
        if (!files.isEmpty()) addSources(files);
    });
    connect(addFolder_, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Add a source folder"), lastFolder());
        if (!dir.isEmpty()) rememberFolder(QFileInfo(dir).absolutePath());
        if (!dir.isEmpty()) addSources({dir});
    });
    connect(remove_, &QPushButton::clicked, this, [this] {
        const QModelIndex i = sourceView_->currentIndex();
        if (!i.isValid()) return;
        (void)db_->removeSource(sources_->sourceAt(i.row()).id);
        sources_->refresh();
        refreshCitations();
        libraries_->refresh();
        onWorker([w = worker_, id = libraryId_] { w->refreshContext(id); });
    });
    connect(readButton_, &QPushButton::clicked, this, &MainWindow::readLibrary);
    connect(cancelButton_, &QPushButton::clicked, this, &MainWindow::stop);
    connect(newChatButton, &QPushButton::clicked, this, &MainWindow::newChat);
    connect(chatPicker_, &QComboBox::activated, this, [this](int row) { showChat(chats_->idAt(row)); });
    connect(chat_, &ChatView::sendRequested, this, &MainWindow::ask);
    connect(chat_, &ChatView::citationActivated, this, &MainWindow::openCitation);
    // A fresh answer to the same question, in place of the last one in the same chat (computed from
    // the conversation before that question, so the earlier answer does not steer it).
    connect(chat_, &ChatView::regenerateRequested, this, &MainWindow::regenerate);
    connect(chat_, &ChatView::stopRequested, this, &MainWindow::stop);
    connect(chat_, &ChatView::exportRequested, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export chat"), lastFolder() + "/chat.md", tr("Markdown (*.md)"));
        if (!path.isEmpty()) rememberFolder(QFileInfo(path).absolutePath());
        if (!path.isEmpty() && !exportChat(path)) QMessageBox::warning(this, tr("Export"), tr("Could not write %1").arg(path));
    });
    new QShortcut(QKeySequence::New, this, [this] { newChat(); });
    new QShortcut(QKeySequence::Open, this, [this] { addFiles_->click(); });
}

void MainWindow::connectWorker() {
    connect(worker_, &EngineWorker::modelLoaded, this, [this](const QString& dir, const QString& description) {
        modelReady_ = true;
        modelLine_->setText(tr("Model: %1 — %2").arg(QFileInfo(dir).fileName(), description));
        if (demo_) {
            banner_->setText(tr("Demo mode: answers come from a tiny demo model with random weights, so they are not meaningful. "
                                "Choose a MiniCPM-SALA model folder in Settings, or download one there with “Get model…”, to get real answers."));
            banner_->show();
            ensureDemoLibrary();
        } else {
            banner_->hide();
        }
        if (libraryId_) onWorker([w = worker_, id = libraryId_] { w->refreshContext(id); });
        emit modelReadyChanged(true);
    });
    connect(worker_, &EngineWorker::modelFailed, this, [this](const QString& reason) {
        modelReady_ = false;
        modelLine_->setText(tr("No usable model"));
        banner_->setText(tr("The model could not be loaded: %1. Choose another folder in Settings.").arg(reason));
        banner_->show();
    });
    connect(worker_, &EngineWorker::contextReady, this,
            [this](qint64 id, qint64 tokens, qint64 limit, const QStringList& largest, const QString& state, const QString& problem) {
                if (id != libraryId_) return;
                contextTokens_ = tokens;
                problem_ = problem;
                gauge_->setUsage(tokens, limit);
                gauge_->setOverLimit(problem.contains(tr("context limit")) || problem.contains(tr("of GPU memory")));
                chat_->setBlockedReason(problem);
                problemLabel_->setText(problem);
                problemLabel_->setVisible(!problem.isEmpty());
                readButton_->setEnabled(!busy_ && problem.isEmpty());
                largest_->setText(largest.isEmpty() ? QString() : tr("Largest: %1").arg(largest.join(" · ")));
                stateLabel_->setText(tr("Saved state: <b>%1</b>").arg(state));
                sources_->refresh();
            });
    connect(worker_, &EngineWorker::sourceAdded, this, [this](qint64 id, const QString& path, const QString& status, const QString& error) {
        if (status == "needs password") {
            bool ok = false;
            const bool wrong = error.contains("does not open");
            const QString prompt = wrong ? tr("That password does not open %1. Try again:").arg(QFileInfo(path).fileName())
                                         : tr("%1 is encrypted. Password:").arg(QFileInfo(path).fileName());
            const QString pw = QInputDialog::getText(this, wrong ? tr("Wrong password") : tr("Password needed"), prompt,
                                                     QLineEdit::Password, QString(), &ok);
            if (ok && !pw.isEmpty()) {
                setBusy(true, tr("Adding %1…").arg(QFileInfo(path).fileName()));  // Stop can end it
                onWorker([w = worker_, id, path, pw] { w->addSources(id, {path}, pw); });
                return;
            }
        } else if (status != "ready") {
            statusBar()->showMessage(tr("%1: %2").arg(QFileInfo(path).fileName(), error), 10000);
        }
        if (id == libraryId_) sources_->refresh();
    });
    connect(worker_, &EngineWorker::sourcesDone, this, [this] {
        libraries_->refresh();
        sources_->refresh();
        refreshCitations();
        setBusy(false);
        emit sourcesDone();
    });
    connect(worker_, &EngineWorker::readProgress, this, [this](qint64 done, qint64 total, double tps, double eta) {
        progress_->setMaximum(static_cast<int>(std::min<qint64>(total, INT32_MAX)));
        progress_->setValue(static_cast<int>(std::min<qint64>(done, INT32_MAX)));
        progressLabel_->setText(tr("Reading: %1 of %2 tokens · %3 tokens/s · about %4 s left")
                                    .arg(QLocale().toString(done), QLocale().toString(total))
                                    .arg(tps, 0, 'f', 0)
                                    .arg(eta, 0, 'f', 0));
        stateLabel_->setText(tr("Saved state: <b>reading…</b>"));
    });
    connect(worker_, &EngineWorker::readFinished, this, [this](qint64, bool ok, const QString& message) {
        progressLabel_->setText(message);
        setBusy(false);
        emit readDone(ok);
    });
    connect(worker_, &EngineWorker::answerStarted, this, [this] { progressLabel_->setText(tr("Answering…")); });
    connect(worker_, &EngineWorker::answerDelta, this, [this](const QString& d) {
        if (streamingInView_) chat_->appendToAnswer(d);  // not when another library (or chat) is on screen
    });
    connect(worker_, &EngineWorker::answerStopped, this, [this](qint64 library, const QString& message) {
        // Stopped before the answer began: a regenerated answer keeps the one it would have replaced.
        if (streamingInView_ && library == libraryId_ && regenerating_) showChat(chatId_);
        else if (streamingInView_ && library == libraryId_) chat_->finishAnswer(QString(), tr("stopped before the answer began"), true);
        regenerating_ = false;
        streamingInView_ = false;
        progressLabel_->setText(message);
        setBusy(false);
        emit answerDone(0, 0);
    });
    connect(worker_, &EngineWorker::answerFinished, this,
            [this](qint64 chatId, const QString& answer, double firstToken, double tps, const QString& stopReason, qint64 computed) {
                regenerating_ = false;
                lastChat_[answeringLibrary_] = chatId;
                if (answeringLibrary_ == libraryId_ && !streamingInView_) {  // left and came back: show it from the library
                    chats_->refresh();
                    showChat(chatId);
                    chatPicker_->setCurrentIndex(chats_->rowOf(chatId));
                } else if (answeringLibrary_ == libraryId_) {
                    chatId_ = chatId;
                    const QString stats = tr("first token %1 s · %2 tokens/s · %3 tokens computed").arg(firstToken, 0, 'f', 2).arg(tps, 0, 'f', 1).arg(computed);
                    chat_->finishAnswer(answer, stats, stopReason == "cancelled");
                    chats_->refresh();
                    chatPicker_->setCurrentIndex(chats_->rowOf(chatId));
                } else {
                    statusBar()->showMessage(tr("The answer in library “%1” is ready in its chat.").arg(libraries_->nameOf(answeringLibrary_)), 15000);
                }
                progressLabel_->setText(QString());
                setBusy(false);
                emit answerDone(chatId, computed);
            });
    // The worker's connection and the window's follow each other out of a full disk's read-only mode:
    // a reader opened read-only does not see what the other one writes.
    connect(worker_, &EngineWorker::reopenedForWriting, this, [this] {
        if (db_->diskFull()) db_->reopenForWriting();
        showReadOnly();
        libraries_->refresh();
        sources_->refresh();
        chats_->refresh();
    });
    connect(worker_, &EngineWorker::notice, this, [this](const QString& text) { statusBar()->showMessage(text, 15000); });
    connect(worker_, &EngineWorker::failed, this, [this](const QString& what, const QString& reason) {
        if (regenerating_ && streamingInView_) showChat(chatId_);  // the earlier answer is still the chat's
        regenerating_ = false;
        setBusy(false);
        QMessageBox::warning(this, what, reason);
    });
}

void MainWindow::loadModel() {
    QString dir;
    if (auto s = db_->setting("model"); s && !s.value().isEmpty()) dir = s.value();
    demo_ = dir.isEmpty();
    if (demo_) dir = app::demoModelDir();
    modelReady_ = false;
    onWorker([w = worker_, dir] { w->loadModel(dir); });
}

void MainWindow::ensureDemoLibrary() {
    if (auto lib = db_->library(tr("Demo")); lib && lib.value()) return;
    const QString demoDir = app::demoLibraryDir();
    if (demoDir.isEmpty()) return;
    const qint64 id = createLibrary(tr("Demo"));
    selectLibrary(id);
    addSources({demoDir + "/the-keeper-of-the-light.txt", demoDir + "/wordcount"});
}

void MainWindow::setBusy(bool busy, const QString& what) {
    busy_ = busy;
    readButton_->setEnabled(!busy && problem_.isEmpty());
    cancelButton_->setEnabled(busy);
    addFiles_->setEnabled(!busy);
    addFolder_->setEnabled(!busy);
    chat_->setBusy(busy);
    if (busy && !what.isEmpty()) progressLabel_->setText(what);
    if (!busy) progress_->setValue(progress_->maximum());
    emit busyChanged(busy);
}

qint64 MainWindow::createLibrary(const QString& name) {
    QString system;
    if (auto s = db_->setting("system_prompt")) system = s.value();
    auto id = db_->createLibrary(name, system);
    if (!id) {
        QMessageBox::warning(this, tr("New library"), QString::fromStdString(id.status().message()));
        return 0;
    }
    libraries_->refresh();
    return id.value();
}

void MainWindow::selectLibrary(qint64 id) {
    if (!id) return;
    libraryId_ = id;
    chatId_ = 0;
    sources_->setLibrary(id);
    chats_->setLibrary(id);
    chatPicker_->setCurrentIndex(-1);
    chat_->setTurns({});
    refreshCitations();
    problem_.clear();
    problemLabel_->hide();
    chat_->setBlockedReason({});
    gauge_->setOverLimit(false);
    streamingInView_ = false;  // an answer being written stays in its own chat
    if (const qint64 last = lastChat_.value(id); last && chats_->rowOf(last) >= 0) {  // back to the chat it was on
        showChat(last);
        chatPicker_->setCurrentIndex(chats_->rowOf(last));
    }
    const int row = libraries_->rowOf(id);
    libraryView_->setCurrentIndex(libraries_->index(row));  // current and selected: highlighted
    libraryView_->selectionModel()->select(libraries_->index(row), QItemSelectionModel::ClearAndSelect);
    libraryTitle_->setText(libraries_->data(libraries_->index(row), Qt::DisplayRole).toString());
    gauge_->setUsage(0, 1 << 20);
    stateLabel_->setText(tr("Saved state: …"));
    if (modelReady_) onWorker([w = worker_, id] { w->refreshContext(id); });
}

void MainWindow::addSources(const QStringList& paths, const QString& password) {
    if (!libraryId_ || paths.isEmpty()) return;
    setBusy(true, tr("Adding %n source(s)…", "", static_cast<int>(paths.size())));
    onWorker([w = worker_, id = libraryId_, paths, password] { w->addSources(id, paths, password); });
}

void MainWindow::readLibrary() {
    if (!libraryId_ || busy_) return;
    setBusy(true, tr("Reading…"));
    onWorker([w = worker_, id = libraryId_] { w->readLibrary(id); });
}

void MainWindow::ask(const QString& question) { askWith(question, false); }

void MainWindow::regenerate(const QString& question) {
    if (!chatId_) return ask(question);  // not recorded yet (an answer that never began): ask again
    askWith(question, true);
}

void MainWindow::askWith(const QString& question, bool replaceLast) {
    if (!libraryId_ || busy_ || question.trimmed().isEmpty() || !problem_.isEmpty()) return;
    AnswerSettings s;
    s.replaceLast = replaceLast;
    s.thinking = chat_->thinkingEnabled();
    if (auto v = db_->setting("temperature"); v && !v.value().isEmpty()) s.temperature = v.value().toDouble();
    if (auto v = db_->setting("top_p"); v && !v.value().isEmpty()) s.topP = v.value().toDouble();
    if (auto v = db_->setting("max_tokens"); v && !v.value().isEmpty()) s.maxTokens = v.value().toInt();
    if (replaceLast) chat_->beginRegenerate();
    else chat_->beginAnswer(question);
    regenerating_ = replaceLast;
    answeringLibrary_ = libraryId_;
    streamingInView_ = true;
    setBusy(true, tr("Preparing the answer…"));
    onWorker([w = worker_, id = libraryId_, question, chat = chatId_, s] { w->ask(id, question, chat, s); });
}

void MainWindow::stop() { worker_->requestCancel(); }

void MainWindow::newChat() {
    chatId_ = 0;
    lastChat_.remove(libraryId_);
    chatPicker_->setCurrentIndex(-1);
    chat_->setTurns({});
}

void MainWindow::showChat(qint64 chatId) {
    chatId_ = chatId;
    if (libraryId_) lastChat_[libraryId_] = chatId;
    QList<ChatView::Turn> turns;
    if (auto messages = db_->messages(chatId))
        for (const auto& m : messages.value()) {
            if (m.role == "user") turns.append({m.content, QString(), QString()});
            else if (!turns.isEmpty())
                turns.last().answer = m.content, turns.last().stopped = m.stopped,
                turns.last().stats = tr("first token %1 s · %2 tokens/s").arg(m.firstTokenSeconds, 0, 'f', 2).arg(m.tokensPerSecond, 0, 'f', 1);
        }
    chat_->setTurns(turns);
}

bool MainWindow::exportChat(const QString& path) {
    auto chat = db_->chat(chatId_);
    auto lib = db_->libraries();
    if (!chat || !chat.value() || !lib) return false;
    app::LibraryRow library;
    for (const auto& l : lib.value())
        if (l.id == libraryId_) library = l;
    auto messages = db_->messages(chatId_);
    if (!messages) return false;
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) return false;
    return f.write(app::chatMarkdown(library, *chat.value(), messages.value()).toUtf8()) > 0;
}

void MainWindow::openSettings() {
    SettingsDialog dialog(*db_, contextTokens_, this);
    dialog.showServer(server_);
    if (dialog.exec() == QDialog::Accepted) {
        loadModel();
        applyServeSettings();
    }
}

void MainWindow::refreshCitations() {
    auto index = app::CitationIndex::forLibrary(*db_, libraryId_);
    citationIndex_ = index ? std::make_shared<const app::CitationIndex>(std::move(index.value())) : nullptr;
    chat_->setCitationIndex(citationIndex_);
}

void MainWindow::openCitation(const app::Citation& c) {
    if (c.kind == "page") {
        if (auto v = db_->setting("pdf_viewer"); v && v.value() == "system") {
            QDesktopServices::openUrl(QUrl::fromLocalFile(c.path));
            return;
        }
        if (!pageView_) pageView_ = new PdfPageView(this);
        pageView_->openPage(c.path, c.page);
        pageView_->show();
        pageView_->raise();
        return;
    }
    if (!citationIndex_) return;
    if (!codeView_) codeView_ = new SourceCodeView(this);
    codeView_->openAt(c.path, citationIndex_->fileLines(c.path), c.line);
    codeView_->show();
    codeView_->raise();
}

QString MainWindow::lastFolder() const {
    auto v = db_->setting("last_folder");
    return v && !v.value().isEmpty() && QFileInfo(v.value()).isDir() ? v.value() : QDir::homePath();
}

void MainWindow::rememberFolder(const QString& dir) { (void)db_->setSetting("last_folder", dir); }

bool MainWindow::renameLibrary(qint64 id, const QString& name) {
    if (Status st = db_->renameLibrary(id, name); !st) {
        statusBar()->showMessage(tr("Cannot rename: %1").arg(QString::fromStdString(st.message())), 15000);
        return false;
    }
    libraries_->refresh();
    if (id == libraryId_) {
        libraryTitle_->setText(libraries_->nameOf(id));
        libraryView_->setCurrentIndex(libraries_->index(libraries_->rowOf(id)));
    }
    return true;
}

bool MainWindow::deleteLibrary(qint64 id) {
    if (busy_) {
        statusBar()->showMessage(tr("Wait until the current work ends (or Stop it) before deleting a library."), 15000);
        return false;
    }
    const bool wasFull = db_->diskFull();
    auto removed = app::deleteLibraryWithStates(*db_, id);
    showReadOnly();
    if (wasFull && !db_->readOnly()) onWorker([w = worker_] { w->reopenForWriting(); });
    if (!removed) {
        statusBar()->showMessage(tr("Cannot delete: %1").arg(QString::fromStdString(removed.status().message())), 15000);
        return false;
    }
    lastChat_.remove(id);
    libraries_->refresh();
    if (!removed->leftFiles.isEmpty())
        statusBar()->showMessage(tr("Deleted; some state files could not be removed: %1").arg(removed->leftFiles.join("; ")), 15000);
    if (id == libraryId_) {
        libraryId_ = 0;
        if (libraries_->rowCount() > 0) selectLibrary(libraries_->idAt(0));
        else {
            sources_->setLibrary(0);
            chats_->setLibrary(0);
            chat_->setTurns({});
            libraryTitle_->clear();
        }
    }
    return true;
}

bool MainWindow::renameChat(qint64 chatId, const QString& title) {
    if (Status st = db_->renameChat(chatId, title); !st) {
        statusBar()->showMessage(tr("Cannot rename: %1").arg(QString::fromStdString(st.message())), 15000);
        return false;
    }
    chats_->refresh();
    chatPicker_->setCurrentIndex(chats_->rowOf(chatId_));
    return true;
}

bool MainWindow::deleteChat(qint64 chatId) {
    if (busy_) {
        statusBar()->showMessage(tr("Wait until the answer ends (or Stop it) before deleting a chat."), 15000);
        return false;
    }
    const bool wasFull = db_->diskFull();
    auto removed = app::deleteChatWithState(*db_, chatId);
    showReadOnly();
    if (wasFull && !db_->readOnly()) onWorker([w = worker_] { w->reopenForWriting(); });
    if (!removed) {
        statusBar()->showMessage(tr("Cannot delete: %1").arg(QString::fromStdString(removed.status().message())), 15000);
        return false;
    }
    for (auto it = lastChat_.begin(); it != lastChat_.end();)
        it = it.value() == chatId ? lastChat_.erase(it) : std::next(it);
    chats_->refresh();
    if (chatId == chatId_) newChat();
    else chatPicker_->setCurrentIndex(chats_->rowOf(chatId_));
    return true;
}

PdfPageView* MainWindow::pageView() const { return pageView_; }
SourceCodeView* MainWindow::codeView() const { return codeView_; }

QString MainWindow::stateText() const { return stateLabel_->text(); }
QString MainWindow::modelLineText() const { return modelLine_->text(); }
void MainWindow::showReadOnly() {
    // A read-only folder, or a disk that was full when the window opened: reading works, and every
    // change fails; say why once, where it stays in view. A delete that freed the space takes it away.
    if (db_->readOnly() && !readOnlyLine_) {
        readOnlyLine_ = new QLabel(tr("Read-only: the library is %1").arg(db_->readOnlyReason()), this);
        readOnlyLine_->setWordWrap(false);
        statusBar()->addPermanentWidget(readOnlyLine_);
    } else if (!db_->readOnly() && readOnlyLine_) {
        statusBar()->removeWidget(readOnlyLine_);
        delete readOnlyLine_;
        readOnlyLine_ = nullptr;
    }
}

QString MainWindow::readOnlyText() const { return readOnlyLine_ ? readOnlyLine_->text() : QString(); }
QString MainWindow::progressText() const { return progressLabel_->text(); }

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls() && libraryId_) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    QStringList paths;
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile()) paths << url.toLocalFile();
    addSources(paths);
    event->acceptProposedAction();
}

}  // namespace quire::ui
