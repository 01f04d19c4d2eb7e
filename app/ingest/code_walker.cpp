#include "code_walker.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSet>

#include <dirent.h>

#include <algorithm>
#include <string_view>

#include "gitignore.h"
#include "json.h"
#include "regular_file.h"

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

constexpr qint64 kMaxGitignoreBytes = 1 << 20;

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
        auto read = readRegularFile(info.filePath(), options.maxFileBytes);
        if (!read) {
            tree.skipped.append({rel, "unreadable: " + fileErrorReason(read.status(), info.filePath())});
            return;
        }
        const QByteArray& bytes = read.value();
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

    // Qt cannot name a file whose name is not UTF-8 (it never appears in QDir's list, or appears
    // mangled and cannot be opened); list such names as skipped, with their bad bytes as \xNN.
    void listUndecodableNames(const QString& dirPath, const QString& relDir) {
        DIR* d = ::opendir(QFile::encodeName(dirPath).constData());
        if (!d) return;
        while (const dirent* e = ::readdir(d)) {
            const std::string_view name(e->d_name);
            if (quire::is_valid_utf8(name)) continue;
            QString shown;
            for (const char c : name) {
                const auto b = static_cast<unsigned char>(c);
                shown += b < 0x80 && b >= 0x20 ? QString(QChar(b)) : QString("\\x%1").arg(b, 2, 16, QChar('0'));
            }
            tree.skipped.append({relDir.isEmpty() ? shown : relDir + "/" + shown, "the file name is not UTF-8"});
        }
        ::closedir(d);
    }

    void walk(const QString& dirPath, const QString& relDir) {
        QDir dir(dirPath);
        const QString gitignore = dir.filePath(".gitignore");
        if (QFileInfo::exists(gitignore)) {
            // A FIFO or a huge file named .gitignore must not hang or exhaust the walk.
            auto text = readRegularFile(gitignore, kMaxGitignoreBytes);
            if (text) rules.addFile(relDir, QString::fromUtf8(text.value()));
            else tree.skipped.append({relDir.isEmpty() ? ".gitignore" : relDir + "/.gitignore",
                                      "not used: " + fileErrorReason(text.status(), gitignore)});
        }
        listUndecodableNames(dirPath, relDir);
        QStringList names = dir.entryList(QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot);
        std::sort(names.begin(), names.end(), [](const QString& a, const QString& b) { return a.toUtf8() < b.toUtf8(); });
        for (const QString& name : names) {
            const QString rel = relDir.isEmpty() ? name : relDir + "/" + name;
            const QFileInfo info(dir.filePath(name));
            if (name.contains(QChar::ReplacementCharacter) && !info.exists() && !info.isSymLink()) continue;  // listed above
            const bool isDir = info.isDir();  // follows links
            if (name == ".git" || rules.ignored(rel, isDir)) continue;
            if (name == ".gitignore" && !info.isFile()) continue;  // listed as "not used" above
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
