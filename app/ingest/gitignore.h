#pragma once
// .gitignore semantics (https://git-scm.com/docs/gitignore): blank lines and # comments skipped,
// "!" re-includes, a trailing "/" matches directories only, a pattern with a "/" before its end is
// anchored to the directory of its .gitignore, otherwise it matches a name at any depth; "*", "?",
// "[...]" never cross "/", "**" does. Later rules win; rules from deeper .gitignore files come later.

#include <QString>
#include <QStringList>
#include <QVector>

namespace quire::app {

struct IgnoreRule {
    QString base;     // directory the rule belongs to, relative to the root ("" = root), no trailing "/"
    QString pattern;  // without "!", leading "/" and trailing "/"
    bool negate = false;
    bool dirOnly = false;
    bool anchored = false;
};

class IgnoreRules {
public:
    // Parses one .gitignore's text; its rules apply below `base`.
    void addFile(const QString& base, const QString& text);
    void addPattern(const QString& base, const QString& line);
    // path: relative to the root with "/" separators.
    bool ignored(const QString& path, bool isDir) const;
    qsizetype size() const { return rules_.size(); }

private:
    QVector<IgnoreRule> rules_;
};

// Glob match of a whole path against a gitignore pattern ("**" crosses directories).
bool globMatch(const QString& pattern, const QString& path);

}  // namespace quire::app
