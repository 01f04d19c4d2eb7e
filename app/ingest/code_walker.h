#pragma once
// Walks a source folder in a stable (byte-wise sorted) order and collects its text files, honouring
// .gitignore files at every level plus default excludes, skipping (and listing) binary, non-UTF-8
// and oversized files, and never following a symlink out of the tree or into a loop.

#include <QString>
#include <QStringList>
#include <QVector>

namespace quire::app {

struct CodeFile {
    QString relativePath;
    QString text;
};

struct SkippedFile {
    QString relativePath;
    QString reason;
};

struct CodeWalkOptions {
    bool defaultExcludes = true;
    QStringList extraExcludes;  // gitignore-style patterns, applied last (they win)
    qint64 maxFileBytes = 1 << 20;
};

struct CodeTree {
    QVector<CodeFile> files;
    QVector<SkippedFile> skipped;
    qint64 bytes = 0;
};

// Patterns excluded unless the user turns them off: VCS data, build outputs, vendored dependencies,
// lock files.
const QStringList& defaultExcludePatterns();

CodeTree walkCodeTree(const QString& root, const CodeWalkOptions& options = {});

}  // namespace quire::app
