#include "code_walker.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSet>

#include <algorithm>

#include "gitignore.h"
#include "json.h"

namespace quire::app {

const QStringList& defaultExcludePatterns() {
    static const QStringList patterns = {
        ".git/", ".hg/", ".svn/",
        "build/", "builds/", "dist/", "out/", "target/", "bin/", "obj/", "cmake-build-*/",
        "node_modules/", "vendor/", "third_party/", "third-party/", "external/", "bower_components/",
        "__pycache__/", ".venv/", "venv/", ".tox/", ".mypy_cache/", ".pytest_cache/", ".gradle/", ".idea/",
        "*.lock", "package-lock.json", "pnpm-lock.yaml", "go.sum", "*.min.js", "*.min.css", "*.pyc", "*.o", "*.so", "*.a",
    };
    return patterns;
}

namespace {

struct Walker {
    QString root;
    QString canonicalRoot;
    CodeWalkOptions options;
    IgnoreRules rules;
    QSet<QString> visitedDirs;  // canonical paths
    QSet<QString> visitedFiles;
    CodeTree tree;

    bool insideRoot(const QString& canonical) const {
        return canonical == canonicalRoot || canonical.startsWith(canonicalRoot + "/");
    }

    void readFile(const QFileInfo& info, const QString& rel) {
        const QString canonical = info.canonicalFilePath();
        if (visitedFiles.contains(canonical)) return;  // the same file through a link: once is enough
        visitedFiles.insert(canonical);
        if (info.size() > options.maxFileBytes) {
            tree.skipped.append({rel, QString("too large (%1 KiB, limit %2 KiB)").arg(info.size() / 1024).arg(options.maxFileBytes / 1024)});
            return;
        }
        QFile f(info.filePath());
        if (!f.open(QIODevice::ReadOnly)) {
            tree.skipped.append({rel, "unreadable: " + f.errorString()});
            return;
        }
        const QByteArray bytes = f.readAll();
        if (bytes.left(8192).contains('\0')) {
            tree.skipped.append({rel, "binary"});
            return;
        }
        if (!quire::is_valid_utf8(std::string_view(bytes.constData(), static_cast<size_t>(bytes.size())))) {
            tree.skipped.append({rel, "not UTF-8 text"});
            return;
        }
        tree.files.append({rel, QString::fromUtf8(bytes)});
        tree.bytes += bytes.size();
    }

    void walk(const QString& dirPath, const QString& relDir) {
        QDir dir(dirPath);
        if (QFile::exists(dir.filePath(".gitignore"))) {
            QFile gi(dir.filePath(".gitignore"));
            if (gi.open(QIODevice::ReadOnly)) rules.addFile(relDir, QString::fromUtf8(gi.readAll()));
        }
        QStringList names = dir.entryList(QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot);
        std::sort(names.begin(), names.end(), [](const QString& a, const QString& b) { return a.toUtf8() < b.toUtf8(); });
        for (const QString& name : names) {
            const QString rel = relDir.isEmpty() ? name : relDir + "/" + name;
            const QFileInfo info(dir.filePath(name));
            const bool isDir = info.isDir();  // follows links
            if (name == ".git" || rules.ignored(rel, isDir)) continue;
            if (info.isSymLink()) {
                const QString target = info.canonicalFilePath();
                if (target.isEmpty()) {
                    tree.skipped.append({rel, "broken symlink"});
                    continue;
                }
                if (!insideRoot(target)) {
                    tree.skipped.append({rel, "symlink leads out of the tree"});
                    continue;
                }
                if (isDir && visitedDirs.contains(target)) {
                    tree.skipped.append({rel, "symlink loop"});
                    continue;
                }
            }
            if (isDir) {
                const QString canonical = info.canonicalFilePath();
                if (visitedDirs.contains(canonical)) continue;
                visitedDirs.insert(canonical);
                walk(info.filePath(), rel);
            } else if (info.isFile()) {
                readFile(info, rel);
            } else {
                tree.skipped.append({rel, "not a regular file"});
            }
        }
    }
};

}  // namespace

CodeTree walkCodeTree(const QString& root, const CodeWalkOptions& options) {
    Walker w;
    w.root = root;
    w.canonicalRoot = QFileInfo(root).canonicalFilePath();
    w.options = options;
    if (options.defaultExcludes)
        for (const QString& p : defaultExcludePatterns()) w.rules.addPattern("", p);
    w.visitedDirs.insert(w.canonicalRoot);
    // User patterns must win over every .gitignore: collect the tree's rules first, then re-walk
    // would be costly, so user patterns are checked separately after the .gitignore rules.
    IgnoreRules user;
    for (const QString& p : options.extraExcludes) user.addPattern("", p);
    w.walk(root, "");
    if (user.size() > 0) {
        QVector<CodeFile> kept;
        for (const CodeFile& f : w.tree.files) {
            bool ignored = false;
            // A file is excluded by a user pattern on itself or on any directory above it.
            const QStringList parts = f.relativePath.split('/');
            QString prefix;
            for (int i = 0; i < parts.size() && !ignored; ++i) {
                prefix = prefix.isEmpty() ? parts[i] : prefix + "/" + parts[i];
                ignored = user.ignored(prefix, i + 1 < parts.size());
            }
            if (ignored) w.tree.bytes -= f.text.toUtf8().size();
            else kept.append(f);
        }
        w.tree.files = kept;
    }
    return w.tree;
}

}  // namespace quire::app
