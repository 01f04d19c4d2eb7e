// Settings → "Serve on localhost": the setting and its port are saved, the server starts as a child
// process and its address is shown while it listens; a port in use is reported, stopping frees it.
#include <QCheckBox>
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QSignalSpy>
#include <QPushButton>
#include <QSpinBox>
#include <QtTest>

#include "engine_worker.h"
#include "ingest/library_ingest.h"
#include "local_server.h"
#include "serve_runner.h"
#include "settings_dialog.h"

using namespace quire;
using namespace quire::test;

class TestLocalServer : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void settings_save_serve_choice_and_show_the_address() {
        auto db = app::LibraryDb::open(tmp_.path() + "/library.sqlite");
        QVERIFY(db.is_ok());
        ui::SettingsDialog dialog(*db.value(), 0);
        auto* check = dialog.findChild<QCheckBox*>("serveCheck");
        auto* port = dialog.findChild<QSpinBox*>("servePort");
        auto* status = dialog.findChild<QLabel*>("serveStatus");
        QVERIFY(check && port && status);
        QVERIFY(!check->isChecked());
        QCOMPARE(port->value(), 8080);
        check->setChecked(true);
        port->setValue(9123);
        dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Save)->click();
        QCOMPARE(db.value()->setting("serve.enabled").value(), QString("1"));
        QCOMPARE(db.value()->setting("serve.port").value(), QString("9123"));

        // The server the window would start, on a free port; the dialog shows where it listens.
        ui::LocalServer server(QString::fromStdString(quire_binary()), tmp_.path());
        ui::SettingsDialog shown(*db.value(), 0);
        shown.showServer(&server);
        server.start(0, {"--model", QString::fromStdString(tiny_model("tiny-a"))});
        QTRY_VERIFY_WITH_TIMEOUT(server.state() == ui::LocalServer::State::listening, 60000);
        const QString address = server.address();
        QVERIFY(address.startsWith("http://127.0.0.1:"));
        QVERIFY2(shown.findChild<QLabel*>("serveStatus")->text().contains(address), qPrintable(shown.findChild<QLabel*>("serveStatus")->text()));
        HttpResult models;
        for (int i = 0; i < 600 && models.status != 200; ++i) {
            models = curl({address + "/models"});
            if (models.status != 200) QTest::qWait(100);
        }
        QCOMPARE(models.status, 200);

        // Settings → Model server: checked, then the window's questions go there.
        ui::SettingsDialog remote(*db.value(), 0);
        auto* url = remote.findChild<QLineEdit*>("remoteUrl");
        auto* model = remote.findChild<QLineEdit*>("remoteModel");
        auto* remoteStatus = remote.findChild<QLabel*>("remoteStatus");
        auto* save = remote.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Save);
        url->setText("ftp://somewhere/v1");
        save->click();
        QVERIFY2(remoteStatus->text().contains("http://"), qPrintable(remoteStatus->text()));
        url->setText(address);
        save->click();
        QVERIFY2(remoteStatus->text().contains("Name the model"), qPrintable(remoteStatus->text()));
        QVERIFY(!app::remoteBackend(*db.value()).value().has_value());
        model->setText("tiny-a");
        save->click();
        QCOMPARE(app::remoteBackend(*db.value()).value()->url, address);

        auto lib = db.value()->createLibrary("book", "");
        QVERIFY(lib.is_ok());
        app::IngestOptions io;
        QVERIFY(app::addSourceToLibrary(*db.value(), lib.value(), QString(QUIRE_SOURCE_DIR) + "/resources/demo/the-keeper-of-the-light.txt", io)
                    .stored.is_ok());
        ui::EngineWorker worker(tmp_.path() + "/library.sqlite", tmp_.path() + "/states", QString::fromStdString(quire_binary()));
        QSignalSpy finished(&worker, &ui::EngineWorker::answerFinished);
        QSignalSpy failed(&worker, &ui::EngineWorker::failed);
        ui::AnswerSettings answer;
        answer.maxTokens = 8;
        worker.ask(lib.value(), "Who kept the light?", 0, answer);  // no local model is loaded: the server answers
        QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.first().at(1).toString()));
        QCOMPARE(finished.count(), 1);
        const qint64 chat = finished.first().at(0).toLongLong();
        QVERIFY(!finished.first().at(1).toString().isEmpty());
        QCOMPARE(db.value()->messages(chat).value().size(), 2);

        // The same port again: the second server says why it is not serving.
        ui::LocalServer second(QString::fromStdString(quire_binary()), tmp_.path());
        second.start(server.port(), {"--model", QString::fromStdString(tiny_model("tiny-a"))});
        QTRY_VERIFY_WITH_TIMEOUT(second.state() == ui::LocalServer::State::failed, 60000);
        QVERIFY2(second.statusText().contains("cannot listen"), qPrintable(second.statusText()));

        server.stop();
        QCOMPARE(server.state(), ui::LocalServer::State::off);
        QCOMPARE(shown.findChild<QLabel*>("serveStatus")->text(), QString("Off"));
        QCOMPARE(curl({address + "/models"}).status, 0);  // nothing listens any more
    }
};

QTEST_MAIN(TestLocalServer)
#include "test_local_server.moc"
