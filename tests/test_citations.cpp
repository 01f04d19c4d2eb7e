// Citations: line marks round trip, the citation index resolves good citations and leaves malformed,
// unknown and out-of-range ones (and brackets in code) alone, and the marks cost under 1 % of the
// context, measured with the tiny model's tokenizer on the demo library and on real-sized sources.
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QJsonObject>
#include <QtTest>

#include "ingest/line_marks.h"
#include "ingest/source_ingest.h"
#include "model_config.h"
#include "session/citations.h"
#include "test_support.h"
#include "tokenizer.h"

using namespace quire;
using namespace quire::app;

namespace {

SourceRow row(qint64 id, const QString& path, const QString& kind) {
    SourceRow r;
    r.id = id;
    r.path = path;
    r.kind = kind;
    r.status = "ready";
    return r;
}

QString numberedLines(int n, const QString& prefix) {
    QString s;
    for (int i = 1; i <= n; ++i) s += QString("%1 %2\n").arg(prefix).arg(i);
    return s;
}

// The rendered code tree the ingester would store, built from its parts.
QString treeText(const QList<QPair<QString, QString>>& files) {
    QString t = "### Source tree: proj (" + QString::number(files.size()) + " files)\n";
    for (const auto& f : files) t += "\n==> " + f.first + " <==\n" + withLineMarks(f.second);
    return t;
}

CitationIndex sampleIndex(int pdfCount) {
    CitationIndex index;
    QString pdf = "### Document: book.pdf (3 pages)\n";
    for (int p = 1; p <= 3; ++p) pdf += QString("\n--- page %1 ---\nText of page %1 about lamps.\n").arg(p);
    index.addSource(row(1, "/lib/book.pdf", "pdf"), pdf);
    if (pdfCount > 1) index.addSource(row(4, "/lib/other.pdf", "pdf"), "### Document: other.pdf (1 pages)\n\n--- page 1 ---\nOther.\n");
    index.addSource(row(2, "/src/proj", "code"), treeText({{"src/foo.cpp", numberedLines(130, "foo line")}, {"README.md", "hello\n"}}));
    index.addSource(row(3, "/notes/notes.txt", "text"), "### File: notes.txt\n" + withLineMarks(numberedLines(60, "note")));
    return index;
}

Tokenizer tinyTokenizer() {
    auto c = load_model_config(test::tiny_model("tiny-a") + "/config.json");
    auto t = Tokenizer::load(test::tiny_model("tiny-a"), c->vocab_size);
    if (!t) qFatal("%s", t.status().message().c_str());
    return t.value();
}

}  // namespace

class TestCitations : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

private slots:
    void line_marks_round_trip() {
        QCOMPARE(withLineMarks("a\nb\n", 50), QString("a\nb\n"));
        const QString text = numberedLines(120, "x");
        const QString marked = withLineMarks(text, 50);
        QVERIFY(marked.contains("x 50\n--- line 51 ---\nx 51\n"));
        QVERIFY(marked.contains("x 100\n--- line 101 ---\nx 101\n"));
        QCOMPARE(marked.count("--- line"), 2);
        QCOMPARE(removeLineMarks(marked).join('\n') + "\n", text);
        // A file that itself contains something looking like a mark keeps it.
        const QString odd = "--- line 1 ---\n" + numberedLines(60, "y") + "--- line 7 ---\n";
        QCOMPARE(removeLineMarks(withLineMarks(odd, 50)).join('\n') + "\n", odd);
        // No trailing newline: the last line is kept.
        QCOMPARE(removeLineMarks(withLineMarks("a\nb", 1)), QStringList({"a", "b"}));
    }

    void resolves_good_citations() {
        const CitationIndex index = sampleIndex(1);
        const QString answer = "The lamp [p. 2] and [book.pdf p. 3]; code [src/foo.cpp:120] and [proj/src/foo.cpp:7-9], "
                               "notes [notes.txt:55].";
        const auto cs = index.find(answer);
        QCOMPARE(cs.size(), 5);
        QCOMPARE(cs[0].kind, QString("page"));
        QCOMPARE(cs[0].page, 2);
        QCOMPARE(cs[0].sourceId, qint64(1));
        QCOMPARE(cs[0].label, QString("p. 2"));
        QCOMPARE(cs[0].written, QString("[p. 2]"));
        QCOMPARE(answer.mid(cs[0].start, cs[0].length), QString("[p. 2]"));
        QVERIFY(cs[0].excerpt.contains("page 2 about lamps"));
        QCOMPARE(cs[1].page, 3);
        QCOMPARE(cs[2].kind, QString("line"));
        QCOMPARE(cs[2].line, 120);
        QCOMPARE(cs[2].path, QString("/src/proj/src/foo.cpp"));
        QCOMPARE(cs[2].label, QString("src/foo.cpp:120"));
        QVERIFY(cs[2].excerpt.contains("foo line 120"));  // the marks are not part of the file
        QVERIFY(!cs[2].excerpt.contains("--- line"));
        QCOMPARE(cs[3].line, 7);
        QCOMPARE(cs[4].sourceId, qint64(3));
        QCOMPARE(cs[4].line, 55);
        QCOMPARE(index.fileLines("/src/proj/src/foo.cpp").size(), 130);
        QCOMPARE(index.fileLines("/src/proj/src/foo.cpp")[50], QString("foo line 51"));
        QCOMPARE(index.pageText("/lib/book.pdf", 3), QString("Text of page 3 about lamps."));
        // What `quire ask --json` prints for them.
        const QJsonArray json = citationsToJson(cs);
        QCOMPARE(json.size(), 5);
        QCOMPARE(json[0].toObject().value("source").toInteger(), 1);
        QCOMPARE(json[0].toObject().value("page").toInt(), 2);
        QVERIFY(!json[0].toObject().contains("line"));
        QCOMPARE(json[2].toObject().value("line").toInt(), 120);
        QCOMPARE(json[2].toObject().value("path").toString(), QString("/src/proj/src/foo.cpp"));
        QVERIFY(json[2].toObject().value("text").toString().contains("foo line 120"));
        QCOMPARE(json[4].toObject().value("written").toString(), QString("[notes.txt:55]"));
    }

    void leaves_malformed_and_unknown_as_text() {
        const CitationIndex one = sampleIndex(1);
        const QString answer = "[p. 0] [p. 4] [page 2] [p.] [missing.pdf p. 1] [src/foo.cpp:131] [src/foo.cpp:0] "
                               "[src/bar.cpp:3] [src/foo.cpp] [link](http://x) `[p. 1]` ```\n[p. 2]\n``` [[p. 1]";
        const auto cs = one.find(answer);
        QCOMPARE(cs.size(), 1);  // only the last, inner [p. 1]
        QCOMPARE(cs[0].page, 1);
        // With two PDFs a bare page is ambiguous; a named one still resolves.
        const CitationIndex two = sampleIndex(2);
        QCOMPARE(two.find("[p. 1]").size(), 0);
        const auto named = two.find("[other.pdf p. 1] [BOOK.PDF p. 2]");
        QCOMPARE(named.size(), 2);
        QCOMPARE(named[0].sourceId, qint64(4));
        QCOMPARE(named[1].label, QString("book.pdf p. 2"));
        QVERIFY(CitationIndex().find("[p. 1]").isEmpty());
    }

    void ingested_sources_resolve() {
        const QString root = tmp_.path() + "/tree";
        QDir().mkpath(root + "/src");
        QFile f(root + "/src/main.cpp");
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(numberedLines(75, "int v").toUtf8());
        f.close();
        IngestOptions o;
        const IngestedSource s = ingestSource(root, o);
        QCOMPARE(s.status, QString("ready"));
        QVERIFY(s.text.contains("--- line 51 ---\nint v 51\n"));
        CitationIndex index;
        index.addSource(row(9, s.path, s.kind), s.text);
        const auto cs = index.find("see [src/main.cpp:51]");
        QCOMPARE(cs.size(), 1);
        QCOMPARE(cs[0].excerpt, QString("int v 50\nint v 51\nint v 52"));
    }

    // Records what the marks cost: tokens of the sources with marks against the same without.
    void marks_cost_under_one_percent() {
        const Tokenizer tok = tinyTokenizer();
        const QString src = QUIRE_SOURCE_DIR;
        // A real-sized text: every Markdown file of the repository in one file.
        QString prose;
        for (QDirIterator it(src, {"*.md"}, QDir::Files, QDirIterator::Subdirectories); it.hasNext();) {
            const QString p = it.next();
            if (p.contains("/build")) continue;
            QFile md(p);
            if (md.open(QIODevice::ReadOnly)) prose += QString::fromUtf8(md.readAll()) + "\n";
        }
        const QString proseFile = tmp_.path() + "/all-docs.md";
        QFile out(proseFile);
        QVERIFY(out.open(QIODevice::WriteOnly));
        out.write(prose.toUtf8());
        out.close();
        const QList<QPair<QString, QString>> cases = {
            {"demo story", src + "/resources/demo/the-keeper-of-the-light.txt"},
            {"demo code tree", src + "/resources/demo/wordcount"},
            {"repository docs as one text", proseFile},
            {"repository app/ (code)", src + "/app"},
            {"repository engine/ (code)", src + "/engine"},
        };
        for (const auto& [name, path] : cases) {
            IngestOptions with, without;
            without.lineMarkEvery = 0;
            const IngestedSource a = ingestSource(path, with), b = ingestSource(path, without);
            QCOMPARE(a.status, QString("ready"));
            const auto ta = tok.encode_text(a.text.toStdString(), false).size();
            const auto tb = tok.encode_text(b.text.toStdString(), false).size();
            const double cost = 100.0 * double(ta - tb) / double(ta);
            qInfo("%s: %zu tokens with marks, %zu without: %.2f %%", qPrintable(name), ta, tb, cost);
            QVERIFY2(cost < 1.0, qPrintable(QString("%1: marks cost %2 %").arg(name).arg(cost)));
        }
        // The instruction itself, once per context.
        qInfo("citation instruction: %zu tokens", tok.encode_text(citationInstruction().toStdString(), false).size());
    }
};

QTEST_MAIN(TestCitations)
#include "test_citations.moc"
