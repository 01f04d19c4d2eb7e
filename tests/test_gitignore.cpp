// .gitignore matching as git documents it.
#include <QtTest>

#include "ingest/gitignore.h"

using namespace quire::app;

class TestGitignore : public QObject {
    Q_OBJECT
private slots:
    void globs() {
        QVERIFY(globMatch("*.log", "a.log"));
        QVERIFY(!globMatch("*.log", "dir/a.log"));  // "*" does not cross "/"
        QVERIFY(globMatch("**/a.log", "x/y/a.log"));
        QVERIFY(globMatch("**/a.log", "a.log"));
        QVERIFY(globMatch("doc/**", "doc/x/y.txt"));
        QVERIFY(globMatch("a/**/b", "a/b"));
        QVERIFY(globMatch("a/**/b", "a/x/y/b"));
        QVERIFY(!globMatch("a/**/b", "a/x/c"));
        QVERIFY(globMatch("file?.txt", "file1.txt"));
        QVERIFY(!globMatch("file?.txt", "file/.txt"));
        QVERIFY(globMatch("[abc].c", "b.c"));
        QVERIFY(!globMatch("[!abc].c", "b.c"));
        QVERIFY(globMatch("[0-9]x", "7x"));
        QVERIFY(globMatch("\\*lit", "*lit"));
    }
    // Patterns that make a backtracking matcher exponential (over a minute each before the fix) must
    // be decided at once; the time bound only catches a return of the exponential search.
    void pathological_patterns_are_matched_in_polynomial_time() {
        QElapsedTimer timer;
        timer.start();
        const QString name = QString(50, 'a');
        QVERIFY(!globMatch("*a*a*a*a*a*a*a*a*a*a*b", name));
        QVERIFY(globMatch("*a*a*a*a*a*a*a*a*a*a*", name));
        QString deep;
        for (int i = 0; i < 30; ++i) deep += "d/";
        QVERIFY(!globMatch(QString("**/").repeated(10) + "x", deep + "y"));
        QVERIFY(globMatch(QString("**/").repeated(10) + "y", deep + "y"));
        IgnoreRules r;
        r.addPattern("", "*a*a*a*a*a*a*a*a*a*a*b");
        r.addPattern("", QString("**/").repeated(10) + "x");
        QVERIFY(!r.ignored(deep + name, false));
        QVERIFY2(timer.elapsed() < 5000, qPrintable(QString("%1 ms").arg(timer.elapsed())));
    }
    void rules() {
        IgnoreRules r;
        r.addFile("", "# comment\n\n*.log\n!keep.log\nbuild/\n/rootonly.txt\ndocs/*.md\n\\#hash\nspace\\ \n");
        QVERIFY(r.ignored("a.log", false));
        QVERIFY(r.ignored("deep/x/a.log", false));
        QVERIFY(!r.ignored("keep.log", false));        // negation re-includes
        QVERIFY(r.ignored("build", true));
        QVERIFY(!r.ignored("build", false));           // directory-only rule
        QVERIFY(r.ignored("src/build", true));         // unanchored: any depth
        QVERIFY(r.ignored("rootonly.txt", false));
        QVERIFY(!r.ignored("sub/rootonly.txt", false));  // anchored to the root
        QVERIFY(r.ignored("docs/a.md", false));
        QVERIFY(!r.ignored("docs/sub/a.md", false));   // "*" stays in one directory
        QVERIFY(r.ignored("#hash", false));
        QVERIFY(r.ignored("space ", false));
    }
    void nested_files_are_scoped_and_later_rules_win() {
        IgnoreRules r;
        r.addFile("", "*.tmp\n");
        r.addFile("sub", "!important.tmp\n/local.txt\n");
        QVERIFY(r.ignored("x.tmp", false));
        QVERIFY(r.ignored("sub/x.tmp", false));
        QVERIFY(!r.ignored("sub/important.tmp", false));
        QVERIFY(r.ignored("important.tmp", false));     // the negation applies only below sub/
        QVERIFY(r.ignored("sub/local.txt", false));
        QVERIFY(!r.ignored("local.txt", false));
        QVERIFY(!r.ignored("other/local.txt", false));
    }
};

QTEST_APPLESS_MAIN(TestGitignore)
#include "test_gitignore.moc"
