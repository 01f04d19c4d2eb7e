// The library database against its surroundings (issue 16): a journal deleted under a running
// process, a foreign SQLite file, a read-only data folder.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QRegularExpression>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QtTest>

#include <unistd.h>

#include "cli_runner.h"
#include "sleeping_process.h"
#include "small_disk.h"
#include "library/library_db.h"
#include "library/library_removal.h"
#include "session/session_service.h"

using namespace quire::test;
using quire::app::LibraryDb;
using quire::app::PrefixStateRow;

class TestLibraryGuards : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString data_;
    CliResult quire(QStringList args) {
        args << "--data-dir" << data_;
        return runQuire(args, 60000);
    }
    // The database as schema 3 had it (before id_floor), after running `extra`.
    static bool downgradeToSchema3(const QString& path, const char* extra = nullptr) {
        bool ok = true;
        {
            QSqlDatabase c = QSqlDatabase::addDatabase("QSQLITE", "downgrade");
            c.setDatabaseName(path);
            ok = c.open();
            QSqlQuery q(c);
            for (const char* sql : {"DROP TRIGGER libraries_id_floor", "DROP TRIGGER chats_id_floor", "DROP TRIGGER messages_id_floor",
                                    "DROP TABLE id_floor", "DROP TABLE IF EXISTS source_tokens", extra, "PRAGMA user_version = 3"})
                if (ok && sql) ok = q.exec(sql);
            c.close();
        }
        QSqlDatabase::removeDatabase("downgrade");
        return ok;
    }
    // A 300 KiB file DATA/states/NAME.qstate recorded as library `libraryId`'s prefix state.
    static bool addStateFile(LibraryDb& db, qint64 libraryId, const QString& data, const QString& name) {
        put(data + "/states/" + name + ".qstate", QByteArray(300 << 10, 's'));
        PrefixStateRow row;
        row.libraryId = libraryId;
        row.path = "states/" + name + ".qstate";
        row.modelFingerprint = "m";
        row.tokenHash = "h";
        row.tokenCount = 1;
        row.bytes = 300 << 10;
        return db.addPrefixState(row).is_ok();
    }

    QString note(const QString& name) {
        const QString path = tmp_.path() + "/" + name;
        put(path, ("A note called " + name + ".\n").toUtf8());
        return path;
    }

private slots:
    void init() {
        data_ = tmp_.path() + "/" + QTest::currentTestFunction();
        if (const char* tag = QTest::currentDataTag()) data_ += "-" + QString(tag).replace(QRegularExpression("[^A-Za-z0-9]+"), "_");
        QDir().mkpath(data_);
    }

    // Deleting the newest chat or library gave its number to the next one (SQLite's MAX(id) + 1):
    // a follow-up still being written for the deleted chat landed in the new chat, under another
    // question. Numbers are now never given twice, and the late answer is refused by name.
    void numbers_are_never_given_twice() {
        auto opened = LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(opened.is_ok());
        LibraryDb& db = *opened.value();
        const qint64 a = db.createLibrary("a", "").value();
        const qint64 first = db.createChat(a, "first").value();
        QVERIFY(db.deleteChat(first).is_ok());
        const qint64 second = db.createChat(a, "second").value();
        QVERIFY2(second > first, qPrintable(QString("chat %1 after deleted chat %2").arg(second).arg(first)));
        quire::app::MessageRow q, answer;
        q.role = "user", q.content = "late follow-up";
        answer.role = "assistant", answer.content = "late answer";
        auto late = db.recordExchange(first, a, "late", q, answer);
        QVERIFY(!late.is_ok());
        QVERIFY2(QString::fromStdString(late.status().message()).contains(QString("chat %1 was deleted").arg(first)),
                 late.status().message().c_str());
        QVERIFY(db.messages(second).value().isEmpty());
        QVERIFY(db.deleteLibrary(a).is_ok());
        const qint64 b = db.createLibrary("b", "").value();
        QVERIFY(b > a);
        auto orphan = db.recordExchange(0, a, "late", q, answer);
        QVERIFY2(!orphan.is_ok() && orphan.status().message().find("library was deleted") != std::string::npos, orphan.status().message().c_str());
        QVERIFY(db.chats(b).value().isEmpty());
        // A new process continues after the highest number given, not after the highest left.
        const qint64 third = db.createChat(b, "third").value();
        QVERIFY(db.deleteChat(third).is_ok());
        opened = LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(opened.is_ok());
        QVERIFY(opened.value()->createChat(b, "fourth").value() > third);
    }

    // A name is stored trimmed and in Unicode form C: "café" with a composed é and with e + a
    // combining accent is one library (they looked alike in every list and were two). Names are
    // labels: at most 200 characters.
    void names_that_look_alike_are_one_library() {
        auto opened = LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(opened.is_ok());
        LibraryDb& db = *opened.value();
        const QString composed = QString::fromUtf8("caf\xc3\xa9"), decomposed = QString::fromUtf8("cafe\xcc\x81");
        QVERIFY(composed != decomposed);
        const qint64 id = db.createLibrary(decomposed + "  ", "").value();
        auto again = db.createLibrary(composed, "");
        QVERIFY2(!again.is_ok() && again.status().message().find("already exists") != std::string::npos, again.status().message().c_str());
        QCOMPARE(db.library(composed).value()->id, id);
        QCOMPARE(db.library(decomposed).value()->id, id);
        QCOMPARE(db.library(decomposed).value()->name, composed);
        QVERIFY(db.createLibrary(QString(200, 'n'), "").is_ok());
        auto longer = db.createLibrary(QString(201, 'n'), "");
        QVERIFY2(!longer.is_ok() && longer.status().message().find("at most 200 characters") != std::string::npos, longer.status().message().c_str());
        const qint64 other = db.createLibrary("other", "").value();
        QVERIFY(!db.renameLibrary(other, decomposed).is_ok());  // the name of another library, written differently
    }

    // Two follow-ups to one chat at once were both computed from the same conversation and stored
    // one after the other, as if the second answered the first. The second to finish is refused,
    // and the same between a follow-up and a regenerate.
    void two_follow_ups_at_once_keep_the_conversation_true() {
        auto opened = LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(opened.is_ok());
        LibraryDb& db = *opened.value();
        const qint64 lib = db.createLibrary("a", "").value();
        quire::app::MessageRow q, answer;
        q.role = "user", q.content = "first";
        answer.role = "assistant", answer.content = "one";
        const qint64 chat = db.recordExchange(0, lib, "first", q, answer).value();
        const qint64 seen = db.lastMessageId(chat).value();  // both follow-ups start here
        QVERIFY(seen > 0);
        q.content = "follow-up A";
        QVERIFY(db.recordExchange(chat, lib, "", q, answer, seen).is_ok());
        q.content = "follow-up B";
        auto second = db.recordExchange(chat, lib, "", q, answer, seen);
        QVERIFY(!second.is_ok());
        QVERIFY2(second.status().message().find("got another answer") != std::string::npos, second.status().message().c_str());
        const auto messages = db.messages(chat).value();
        QCOMPARE(messages.size(), qsizetype(4));
        QCOMPARE(messages[2].content, QString("follow-up A"));
        // A regenerate and a follow-up at once: whichever finishes second is refused. A regenerated
        // exchange gets new message numbers, so a follow-up that began before it sees the change.
        const qint64 before = db.lastMessageId(chat).value();
        q.content = "follow-up A again";
        QVERIFY(db.replaceLastExchange(chat, q, answer, before).is_ok());
        QVERIFY(db.lastMessageId(chat).value() > before);
        q.content = "follow-up C";
        QVERIFY(!db.recordExchange(chat, lib, "", q, answer, before).is_ok());
        q.content = "regenerated late";
        QVERIFY(!db.replaceLastExchange(chat, q, answer, before).is_ok());
        QCOMPARE(db.messages(chat).value()[2].content, QString("follow-up A again"));
    }

    // A save killed between renaming its state file into place and recording it left a file that
    // no delete removed (its row had no path). Deleting a chat or a library now also removes the
    // files its number names in DATA/states; another library's files stay.
    void deletes_remove_state_files_the_database_never_recorded() {
        auto opened = LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(opened.is_ok());
        LibraryDb& db = *opened.value();
        const qint64 a = db.createLibrary("a", "").value(), b = db.createLibrary("b", "").value();
        const qint64 chat = db.createChat(a, "c").value(), kept = db.createChat(a, "k").value();
        const QString states = data_ + "/states/";
        for (const QString& f : {QString("chat-%1.qstate").arg(chat), QString("chat-%1.qstate").arg(kept), QString("library-%1-abc.qstate").arg(a),
                                 QString("library-%1-abc.qstate").arg(b), QString("library-%1%1-abc.qstate").arg(a)})
            put(states + f, "state");
        auto one = quire::app::deleteChatWithState(db, chat);
        QVERIFY(one.is_ok());
        QVERIFY(!QFile::exists(states + QString("chat-%1.qstate").arg(chat)));
        QVERIFY(QFile::exists(states + QString("chat-%1.qstate").arg(kept)));
        auto lib = quire::app::deleteLibraryWithStates(db, a);
        QVERIFY(lib.is_ok());
        QVERIFY(!QFile::exists(states + QString("chat-%1.qstate").arg(kept)));
        QVERIFY(!QFile::exists(states + QString("library-%1-abc.qstate").arg(a)));
        QVERIFY(QFile::exists(states + QString("library-%1-abc.qstate").arg(b)));         // another library's
        QVERIFY(QFile::exists(states + QString("library-%1%1-abc.qstate").arg(a)));       // library 11's, not 1's
        QCOMPARE(lib.value().removedFiles.size(), 2);
    }

    // A save's temporary file NAME.qstate.tmp.PID whose PID now belongs to another program is a dead
    // save's and goes; one whose PID runs this program is a save in progress and stays.
    void temporary_state_files_of_dead_saves_go() {
        const QString states = data_ + "/states";
        SleepingProcess same(nullptr), other("not-quire");
        QVERIFY(same.pid() > 0 && other.pid() > 0);
        const QString live = states + QString("/library-1-a.qstate.tmp.%1").arg(same.pid());
        const QString reused = states + QString("/library-1-b.qstate.tmp.%1").arg(other.pid());
        put(live, "partial");
        put(reused, "partial");
        quire::app::removeStaleTemporaryFiles(states);
        QVERIFY(QFile::exists(live));
        QVERIFY(!QFile::exists(reused));
    }

    // export takes the chat's number as --chat does: digits, from 1.
    void export_refuses_what_is_not_a_chat_number() {
        QCOMPARE(quire({"library", "create", "lib"}).code, 0);
        for (const char* bad : {" 1", "+1", "01", "1.0", "x", "99999999999999999999"}) {
            const CliResult r = quire({"export", "lib", bad, "--markdown"});
            QVERIFY2(r.code == 2 && r.err.contains("whole number from 1"), qPrintable(QString(bad) + ": " + r.err));
        }
        const CliResult missing = quire({"export", "lib", "7", "--markdown"});
        QVERIFY2(missing.code == 1 && missing.err.contains("has no chat 7"), qPrintable(missing.err));
    }

    // A database written before the numbers were kept (schema 3) keeps its rows and numbers; new
    // ones follow its highest.
    void schema_3_database_gives_numbers_after_its_highest() {
        const QString path = data_ + "/library.sqlite";
        {
            auto opened = LibraryDb::open(path);
            QVERIFY(opened.is_ok());
            const qint64 lib = opened.value()->createLibrary("old", "").value();
            for (int i = 0; i < 3; ++i) QVERIFY(opened.value()->createChat(lib, "c").is_ok());
        }
        QVERIFY(downgradeToSchema3(path, "DELETE FROM chats WHERE id = 3"));  // the newest chat already deleted
        auto opened = LibraryDb::open(path);
        QVERIFY2(opened.is_ok(), opened.status().message().c_str());
        const auto lib = opened.value()->library("old").value();
        QVERIFY(lib.has_value());
        QCOMPARE(opened.value()->chats(lib->id).value().size(), 2);
        // Number 3 was given before the migration could know it: the next is the one after the highest left.
        QCOMPARE(opened.value()->createChat(lib->id, "new").value(), qint64{3});
        QCOMPARE(opened.value()->createChat(lib->id, "newer").value(), qint64{4});
    }

    // A full disk (the database cannot make its -wal / -shm files) is named as such: "not a usable
    // database" made a healthy library look damaged. Needs root to mount a 1 MiB tmpfs.
    void full_disk_is_named_not_called_damage() {
        SmallDisk disk(tmp_.path() + "/small");
        if (!disk.mounted()) QSKIP("needs root and the right to mount a small tmpfs");
        const QString mnt = disk.path();
        const auto inSmall = [&](QStringList args) { return runQuire(args << "--data-dir" << mnt, 60000); };
        QCOMPARE(inSmall({"library", "create", "k"}).code, 0);
        QVERIFY(disk.fill());
        // Reading works on the full disk (it used to refuse every command); changing says why not.
        const CliResult full = inSmall({"library", "list"});
        QVERIFY2(full.code == 0 && full.out.contains("k\t0 sources"), qPrintable(full.err));
        QVERIFY2(full.err.contains("is on a full disk") && full.err.contains("can be read but not changed"), qPrintable(full.err));
        const CliResult create = inSmall({"library", "create", "m"});
        QCOMPARE(create.code, 1);
        QVERIFY2(create.err.contains("is on a full disk") && !create.err.contains("not a usable"), qPrintable(create.err));
        // No library yet on a full disk: named, not called damage.
        const QString empty = mnt + "/empty";
        QVERIFY(QDir().mkpath(empty) || QFileInfo(empty).isDir());
        const CliResult none = runQuire({"library", "create", "n", "--data-dir", empty}, 60000);
        QVERIFY(none.code != 0);
        QVERIFY2(none.err.contains("cannot create a library in") && none.err.contains("the disk is full"), qPrintable(none.err));
        QVERIFY(!QFileInfo::exists(empty + "/library.sqlite"));  // no empty file left to pass for a library
        QCOMPARE(runQuire({"library", "list", "--data-dir", empty}, 60000).code, 0);
        QVERIFY(disk.empty());
        const CliResult again = inSmall({"library", "list"});
        QVERIFY2(again.code == 0 && again.out.contains("k\t0 sources"), qPrintable(again.err));
    }

    // A process that opened the library before the disk filled: its write says the disk is full
    // ("database or disk is full Unable to fetch row" before).
    void a_write_on_a_full_disk_says_so() {
        SmallDisk disk(tmp_.path() + "/small-write");
        if (!disk.mounted()) QSKIP("needs root and the right to mount a small tmpfs");
        auto open = LibraryDb::open(disk.path() + "/library.sqlite");
        QVERIFY(open.is_ok());
        QVERIFY(disk.fill());
        auto refused = open.value()->createLibrary("no room", QString(200000, 'p'));
        QVERIFY(!refused.is_ok());
        QVERIFY2(refused.status().message().find("the disk holding the library is full") != std::string::npos,
                 refused.status().message().c_str());
        QVERIFY(disk.empty());
        QVERIFY(open.value()->createLibrary("room", "").is_ok());
    }

    // On a full disk the database cannot change, and deleting is how a user frees space: `library delete`
    // and `chats --delete` remove the saved states first, then open the library for writing again and
    // delete the rows (both used to be refused, so Quire could not free space through its own commands).
    void delete_on_a_full_disk_frees_the_states_first() {
        SmallDisk disk(tmp_.path() + "/small-delete");
        if (!disk.mounted()) QSKIP("needs root and the right to mount a small tmpfs");
        const QString mnt = disk.path();
        qint64 chatId = 0;
        {
            auto db = LibraryDb::open(mnt + "/library.sqlite");
            QVERIFY(db.is_ok());
            QVERIFY(db.value()->createLibrary("kept", "").is_ok());
            const qint64 big = db.value()->createLibrary("big", "").value();
            QVERIFY(QDir().mkpath(mnt + "/states"));
            QVERIFY(addStateFile(*db.value(), big, mnt, "big"));
            chatId = db.value()->createChat(big, "a chat").value();
            put(mnt + "/states/chat.qstate", QByteArray(300 << 10, 'c'));
            QVERIFY(db.value()->setChatState(chatId, "states/chat.qstate", 1).is_ok());
        }
        QVERIFY(disk.fill());
        const auto inSmall = [&](QStringList args) { return runQuire(args << "--data-dir" << mnt, 60000); };
        QVERIFY(inSmall({"library", "create", "m"}).err.contains("is on a full disk"));  // full indeed
        const CliResult chat = inSmall({"chats", "big", "--delete", QString::number(chatId)});
        QVERIFY2(chat.code == 0 && chat.out.contains("deleted chat") && chat.out.contains("chat.qstate"), qPrintable(chat.err + chat.out));
        QVERIFY(!QFileInfo::exists(mnt + "/states/chat.qstate"));
        QVERIFY(disk.fill());
        const CliResult lib = inSmall({"library", "delete", "big"});
        QVERIFY2(lib.code == 0 && lib.out.contains("deleted library 'big'") && lib.out.contains("big.qstate"), qPrintable(lib.err + lib.out));
        QVERIFY(!QFileInfo::exists(mnt + "/states/big.qstate"));
        const CliResult list = inSmall({"library", "list"});
        QVERIFY2(list.code == 0 && list.out.contains("kept") && !list.out.contains("big"), qPrintable(list.out + list.err));
        // Nothing left to free: refused, naming the full disk.
        QVERIFY(disk.fill());
        const CliResult none = inSmall({"library", "delete", "kept"});
        QVERIFY2(none.code == 1 && none.err.contains("full disk"), qPrintable(none.err));
        QVERIFY(disk.empty());
        QVERIFY(inSmall({"library", "list"}).out.contains("kept"));
        // Another process holds the library open (its journal files stay): the delete opens it for
        // writing and meets the full disk only when it writes. The states go, and it is tried again.
        auto holder = LibraryDb::open(mnt + "/library.sqlite");
        QVERIFY(holder.is_ok());
        const qint64 held = holder.value()->createLibrary("held", "").value();
        QVERIFY(addStateFile(*holder.value(), held, mnt, "held"));
        QVERIFY(disk.fill());
        const CliResult whileHeld = inSmall({"library", "delete", "held"});
        QVERIFY2(whileHeld.code == 0 && whileHeld.out.contains("deleted library 'held'"), qPrintable(whileHeld.err + whileHeld.out));
        QVERIFY(!QFileInfo::exists(mnt + "/states/held.qstate"));
        QVERIFY(!holder.value()->library("held").value().has_value());
        holder.value().reset();  // the connection goes before the disk is unmounted
        QVERIFY(disk.empty());
    }

    // Only `library create` and `config` make a data folder and its database: the others used to
    // create them in a mistyped --data-dir, and `library list` then listed nothing.
    // A data folder that is a file, an empty name, a library.sqlite that is a folder or an empty file:
    // each named (an empty file is what a failed first open left: no library, nothing created).
    void odd_data_folders_are_named() {
        const QString file = note("plain.txt");
        const CliResult notFolder = runQuire({"library", "list", "--data-dir", file}, 60000);
        QVERIFY2(notFolder.code == 1 && notFolder.err.contains("plain.txt is not a folder"), qPrintable(notFolder.err));
        const CliResult created = runQuire({"library", "create", "x", "--data-dir", file}, 60000);
        QVERIFY2(created.code == 1 && created.err.contains("is not a folder"), qPrintable(created.err));
        const CliResult empty = runQuire({"library", "list", "--data-dir", ""}, 60000);
        QVERIFY2(empty.code == 1 && empty.err.contains("the data folder is empty"), qPrintable(empty.err));
        QVERIFY(QDir().mkpath(data_ + "/library.sqlite"));
        const CliResult dir = quire({"library", "list"});
        QVERIFY2(dir.code == 1 && dir.err.contains("library.sqlite is not a file"), qPrintable(dir.err));
        QVERIFY(QDir(data_ + "/library.sqlite").removeRecursively());
        put(data_ + "/library.sqlite", QByteArray());
        const CliResult zero = quire({"library", "list"});
        QVERIFY2(zero.code == 0 && zero.err.contains("holds no Quire library"), qPrintable(zero.err));
        QCOMPARE(QFileInfo(data_ + "/library.sqlite").size(), qint64(0));
    }

    void commands_that_need_a_library_create_no_data_folder() {
        const QString missing = tmp_.path() + "/no-such-data";
        for (const QStringList& args : {QStringList{"library", "list"}, QStringList{"library", "show", "x"}, QStringList{"ask", "x", "Q?"},
                                        QStringList{"add", "x", note("n.txt")}, QStringList{"chats", "x"}, QStringList{"export", "x", "1"}}) {
            const CliResult r = runQuire(args + QStringList{"--data-dir", missing}, 60000);
            QCOMPARE(r.code, args[1] == "list" ? 0 : 1);
            QVERIFY2(r.err.contains("no-such-data holds no Quire library"), qPrintable(args.join(' ') + ": " + r.err));
            QVERIFY2(!QFileInfo::exists(missing), qPrintable(args.join(' ')));
        }
        QCOMPARE(runQuire({"library", "create", "x", "--data-dir", missing}, 60000).code, 0);
        QVERIFY(QFileInfo::exists(missing + "/library.sqlite"));
    }

    // What happened: with library.sqlite-wal and -shm deleted while a long `ask` ran, a later `add`
    // printed "added" and the source was gone once the ask finished (its close checkpointed its old
    // journal over the add's pages). This process plays the long ask.
    void journal_deleted_under_a_running_process_loses_nothing() {
        QCOMPARE(quire({"library", "create", "lib"}).code, 0);
        QCOMPARE(quire({"add", "lib", note("first.txt")}).code, 0);
        {
            auto longRunning = LibraryDb::open(data_ + "/library.sqlite");
            QVERIFY(longRunning.is_ok());
            LibraryDb& db = *longRunning.value();
            const auto lib = db.library("lib").value();
            QVERIFY(lib.has_value());
            const qint64 libId = lib ? lib->id : 0;
            const auto sources = db.sources(libId).value();
            QVERIFY(db.setSourceTokens(sources[0].id, 123).is_ok());  // as ask does: a write into its journal
            QVERIFY(QFile::remove(data_ + "/library.sqlite-wal"));
            QVERIFY(QFile::remove(data_ + "/library.sqlite-shm"));
            const CliResult added = quire({"add", "lib", note("second.txt")});
            QVERIFY2(added.code == 0 && added.out.contains("added: "), qPrintable(added.err));
            // The long-running process records its answer, then exits.
            QVERIFY(db.setSetting("after", "the deletion").is_ok());
        }
        auto check = LibraryDb::open(data_ + "/library.sqlite");
        QVERIFY(check.is_ok());
        QVERIFY(check.value()->integrityCheck().is_ok());
        QStringList paths;
        const auto sources = check.value()->sources(check.value()->library("lib").value()->id);
        QVERIFY(sources.is_ok());
        for (const auto& s : sources.value()) paths << s.path;
        QVERIFY2(paths.contains(tmp_.path() + "/second.txt"), qPrintable("the source reported as added was lost: " + paths.join(", ")));
        QCOMPARE(check.value()->setting("after").value(), QString("the deletion"));
    }

    void foreign_sqlite_file_is_refused_untouched() {
        {
            QSqlDatabase c = QSqlDatabase::addDatabase("QSQLITE", "foreign");
            c.setDatabaseName(data_ + "/library.sqlite");
            QVERIFY(c.open());
            QSqlQuery q(c);
            QVERIFY(q.exec("CREATE TABLE invoices(id INTEGER PRIMARY KEY, amount REAL)"));
            QVERIFY(q.exec("INSERT INTO invoices(amount) VALUES(12.5)"));
            c.close();
        }
        QSqlDatabase::removeDatabase("foreign");
        const QByteArray before = read_all((data_ + "/library.sqlite").toStdString());
        const CliResult r = quire({"library", "list"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("another program") && r.err.contains("invoices"), qPrintable(r.err));
        QCOMPARE(read_all((data_ + "/library.sqlite").toStdString()), before);
        QVERIFY(!QFile::exists(data_ + "/library.sqlite-wal"));
    }

    void read_only_data_folder_is_read_and_reported_as_read_only_data() {
        QTest::addColumn<bool>("schema3");
        QTest::newRow("current schema") << false;
        QTest::newRow("schema 3 (a library of the previous release: read without upgrading)") << true;
    }
    void read_only_data_folder_is_read_and_reported_as_read_only() {
        QFETCH(bool, schema3);
        QCOMPARE(quire({"library", "create", "lib"}).code, 0);
        QCOMPARE(quire({"add", "lib", note("kept.txt")}).code, 0);
        if (schema3) QVERIFY(downgradeToSchema3(data_ + "/library.sqlite"));
        const QString writable = data_;
        QString readOnly = data_;
        bool mounted = false;
        if (::geteuid() == 0) {
            // Root writes through permission bits: a read-only bind mount is what stops it.
            readOnly = tmp_.path() + "/ro-view";
            QDir().mkpath(readOnly);
            if (QProcess::execute("mount", {"--bind", writable, readOnly}) != 0) QSKIP("running as root without the right to mount");
            mounted = true;
            if (QProcess::execute("mount", {"-o", "remount,bind,ro", readOnly}) != 0) {
                QProcess::execute("umount", {readOnly});
                QSKIP("running as root without the right to remount read-only");
            }
        } else {
            QVERIFY(QFile::setPermissions(writable + "/library.sqlite", QFile::ReadOwner | QFile::ReadGroup));
            QVERIFY(QFile::setPermissions(writable, QFile::ReadOwner | QFile::ExeOwner));
        }
        data_ = readOnly;
        const CliResult list = quire({"library", "list"});
        const CliResult create = quire({"library", "create", "other"});
        const CliResult add = quire({"add", "lib", note("new.txt")});
        const CliResult ask = quire({"ask", "lib", "Who?", "--max-tokens", "2"});
        data_ = writable;
        if (mounted) QProcess::execute("umount", {readOnly});
        else QFile::setPermissions(writable, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        QVERIFY2(list.code == 0 && list.out.contains("lib\t1 sources"), qPrintable(list.err));
        QCOMPARE(create.code, 1);
        QVERIFY2(create.err.contains("read-only") && !create.err.contains("not a usable"), qPrintable(create.err));
        QVERIFY2(add.code == 1 && (add.err + add.out).contains("read-only"), qPrintable(add.err + add.out));
        QVERIFY2(ask.code == 1 && ask.err.contains("read-only"), qPrintable(ask.err));
    }
};

QTEST_GUILESS_MAIN(TestLibraryGuards)
#include "test_library_guards.moc"
