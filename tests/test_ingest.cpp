// Ingestion of code trees and PDFs (the PDF text comes from the `quire pdf-extract` helper process).
#include <QDir>
#include <QFile>
#include <QGuiApplication>
#include <QtTest>

#include <filesystem>

#include "ingest/code_walker.h"
#include "ingest/pdf_reader.h"
#include "ingest/source_ingest.h"
#include "pdf_fixtures.h"
#include "test_support.h"

using namespace quire::app;
using namespace quire::test;

namespace {
using quire::test::put;
IngestOptions options() {
    IngestOptions o;
    o.helperProgram = QString::fromStdString(quire_binary());
    o.pdfTimeoutMs = 60000;
    return o;
}
}  // namespace

class TestIngest : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    QString path(const QString& rel) { return tmp_.path() + "/" + rel; }

private slots:
    void code_tree() {
        const QString root = path("tree");
        put(root + "/.gitignore", "*.log\nsecrets/\n!important.log\n/generated.c\n");
        put(root + "/main.c", "int main() { return 0; }\n");
        put(root + "/generated.c", "// generated\n");
        put(root + "/debug.log", "noise\n");
        put(root + "/important.log", "keep me\n");
        put(root + "/secrets/key.txt", "hunter2\n");
        put(root + "/src/.gitignore", "*.tmp\n!keep.tmp\n");
        put(root + "/src/util.c", "int util(void);\n");
        put(root + "/src/scratch.tmp", "x\n");
        put(root + "/src/keep.tmp", "kept\n");
        put(root + "/src/generated.c", "// not anchored here: kept\n");
        put(root + "/src/deep/z.py", "print('z')\n");
        put(root + "/src/deep/a.py", "print('a')\n");
        put(root + "/image.png", QByteArray("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
        put(root + "/latin1.txt", QByteArray("caf\xe9\n"));
        put(root + "/huge.txt", QByteArray(3 << 20, 'a'));
        put(root + "/node_modules/lib/index.js", "module.exports = 1;\n");
        put(root + "/package-lock.json", "{}\n");
        put(root + "/.git/HEAD", "ref: refs/heads/main\n");
        std::filesystem::create_directory_symlink(root.toStdString() + "/src", root.toStdString() + "/src/deep/loop");
        std::filesystem::create_symlink(tmp_.path().toStdString(), root.toStdString() + "/outside");
        std::filesystem::create_symlink(root.toStdString() + "/main.c", root.toStdString() + "/main_link.c");

        const CodeTree tree = walkCodeTree(root);
        QStringList files;
        for (const CodeFile& f : tree.files) files << f.relativePath;
        QCOMPARE(files, (QStringList{".gitignore", "important.log", "main.c", "src/.gitignore", "src/deep/a.py", "src/deep/z.py",
                                     "src/generated.c", "src/keep.tmp", "src/util.c"}));
        QStringList skipped;
        for (const SkippedFile& s : tree.skipped) skipped << s.relativePath + ": " + s.reason;
        QVERIFY2(skipped.contains("image.png: binary"), qPrintable(skipped.join("\n")));
        QVERIFY(skipped.contains("latin1.txt: not UTF-8 text"));
        QVERIFY(std::any_of(skipped.begin(), skipped.end(), [](const QString& s) { return s.startsWith("huge.txt: too large"); }));
        QVERIFY(skipped.contains("src/deep/loop: symlink loop"));
        QVERIFY(skipped.contains("outside: symlink leads out of the tree"));
        // The link to main.c inside the tree is the same file: read once.
        QCOMPARE(files.count("main.c"), 1);

        // The user can turn the default excludes off and add their own.
        CodeWalkOptions o;
        o.defaultExcludes = false;
        o.extraExcludes = {"src/deep/", "*.json"};
        QStringList other;
        for (const CodeFile& f : walkCodeTree(root, o).files) other << f.relativePath;
        QVERIFY(other.contains("node_modules/lib/index.js"));
        QVERIFY(!other.contains("package-lock.json"));
        QVERIFY(!other.contains("src/deep/a.py"));
        QVERIFY(!other.contains(".git/HEAD"));  // never read, even without default excludes

        // As a source: one header per file, in the same order.
        const IngestedSource s = ingestSource(root, options());
        QCOMPARE(s.status, QString("ready"));
        QCOMPARE(s.kind, QString("code"));
        QCOMPARE(s.units, qint64(9));
        QVERIFY(s.text.indexOf("==> main.c <==\nint main()") > 0);
        QVERIFY(s.text.indexOf("==> src/deep/a.py <==") < s.text.indexOf("==> src/deep/z.py <=="));
        QVERIFY(s.skipped.contains("image.png: binary"));
        QCOMPARE(ingestSource(root, options()).contentHash, s.contentHash);  // stable
    }

    void text_pdf_with_page_markers() {
        writeTextPdf(path("book.pdf"), 3);
        const IngestedSource s = ingestSource(path("book.pdf"), options());
        QVERIFY2(s.status == "ready", qPrintable(s.error));
        QCOMPARE(s.units, qint64(3));
        QVERIFY(s.text.contains("--- page 1 ---\nPage 1: the keeper lit the lamp"));
        QVERIFY(s.text.contains("--- page 3 ---\nPage 3"));
    }
    void encrypted_pdf_needs_a_password() {
        writeTextPdf(path("plain.pdf"), 2, "Secret");
        QVERIFY(encryptPdf(path("plain.pdf"), path("locked.pdf"), "s3cret"));
        IngestOptions o = options();
        IngestedSource s = ingestSource(path("locked.pdf"), o);
        QCOMPARE(s.status, QString("needs password"));
        QVERIFY(s.error.contains("password"));
        o.password = "wrong";
        s = ingestSource(path("locked.pdf"), o);
        QCOMPARE(s.status, QString("needs password"));
        QVERIFY(s.error.contains("does not open"));
        o.password = "s3cret";
        s = ingestSource(path("locked.pdf"), o);
        QCOMPARE(s.status, QString("ready"));
        QVERIFY(s.text.contains("Secret 2"));
    }
    void image_only_pdf_is_reported() {
        writeImageOnlyPdf(path("scan.pdf"), 2);
        const IngestedSource s = ingestSource(path("scan.pdf"), options());
        QCOMPARE(s.status, QString("error"));
        QVERIFY2(s.error.contains("no text (scanned?)"), qPrintable(s.error));
    }
    void damaged_pdfs() {
        // Repairable: the cross-reference table is gone; poppler rebuilds it from the objects.
        writeTextPdf(path("ok.pdf"), 2, "Repaired");
        QByteArray bytes = read_all(path("ok.pdf").toStdString());
        const qsizetype xref = bytes.lastIndexOf("xref");
        QVERIFY(xref > 0);
        bytes = bytes.left(xref) + "%%EOF\n";
        put(path("no-xref.pdf"), bytes);
        IngestedSource s = ingestSource(path("no-xref.pdf"), options());
        QVERIFY2(s.status == "ready", qPrintable(s.error));
        QVERIFY(s.text.contains("Repaired 2"));
        // Not repairable: a PDF header and garbage.
        put(path("garbage.pdf"), "%PDF-1.7\n" + QByteArray(5000, '\x07'));
        s = ingestSource(path("garbage.pdf"), options());
        QCOMPARE(s.status, QString("error"));
        QVERIFY2(!s.error.isEmpty(), "a reason is given");
        // Empty file.
        put(path("empty.pdf"), "");
        QCOMPARE(ingestSource(path("empty.pdf"), options()).status, QString("error"));
    }
    void five_hundred_pages() {
        writeTextPdf(path("long.pdf"), 500, "Leaf");
        const IngestedSource s = ingestSource(path("long.pdf"), options());
        QCOMPARE(s.status, QString("ready"));
        QCOMPARE(s.units, qint64(500));
        QVERIFY(s.text.contains("--- page 500 ---\nLeaf 500"));
    }
    void helper_that_hangs_or_crashes() {
        const QString hang = path("hang.sh"), crash = path("crash.sh");
        put(hang, "#!/bin/sh\nsleep 30\n");
        put(crash, "#!/bin/sh\nkill -SEGV $$\n");
        QFile::setPermissions(hang, QFile::ReadOwner | QFile::ExeOwner);
        QFile::setPermissions(crash, QFile::ReadOwner | QFile::ExeOwner);
        PdfReaderOptions o;
        o.helperProgram = hang;
        o.timeoutMs = 1000;
        PdfText t = readPdf(path("book.pdf"), o);
        QCOMPARE(t.outcome, PdfText::Outcome::error);
        QVERIFY(t.reason.contains("gave up"));
        o.helperProgram = crash;
        t = readPdf(path("book.pdf"), o);
        QCOMPARE(t.outcome, PdfText::Outcome::error);
        QVERIFY(t.reason.contains("crashed"));
    }
    void missing_and_binary_files() {
        QCOMPARE(ingestSource(path("nope.txt"), options()).error, QString("no such file or folder"));
        put(path("blob.bin"), QByteArray("\0\1\2", 3));
        QVERIFY(ingestSource(path("blob.bin"), options()).error.contains("not a text file"));
        // Nothing to ask about: refused, not added as a header alone (a /proc file reads the same way).
        put(path("empty.txt"), QByteArray());
        QCOMPARE(ingestSource(path("empty.txt"), options()).error, QString("the file is empty"));
        put(path("blank.txt"), QByteArray(" \n\t\n"));
        QCOMPARE(ingestSource(path("blank.txt"), options()).error, QString("the file holds only white space"));
        QCOMPARE(ingestSource("/proc/self/status", options()).error, QString("the file is empty"));
    }
};

int main(int argc, char** argv) {
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QGuiApplication app(argc, argv);  // QPdfWriter needs fonts
    TestIngest t;
    return QTest::qExec(&t, argc, argv);
}
#include "test_ingest.moc"
