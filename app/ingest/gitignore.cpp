#include "gitignore.h"

#include <vector>

namespace quire::app {

namespace {

// Matches pattern[pi..] against s[si..]: "*" and "?" stop at "/", "**" crosses directories.
// Backtracking over stars alone is exponential ("*a*a*a*a*a*a*a*a*a*a*b" against a long name), so
// every (pattern position, text position) pair found not to match is remembered and never tried
// again: at most |pattern| x |text| states, each scanning at most |text| positions.
struct Matcher {
    const QString& p;
    const QString& s;
    std::vector<bool> failed;  // (pi, si) -> known not to match

    Matcher(const QString& pattern, const QString& text)
        : p(pattern), s(text), failed(static_cast<size_t>((pattern.size() + 1) * (text.size() + 1)), false) {}

    bool matchHere(int pi, int si) {
        const auto key = static_cast<size_t>(pi * (s.size() + 1) + si);
        if (failed[key]) return false;
        const bool ok = matchFrom(pi, si);
        if (!ok) failed[key] = true;
        return ok;
    }

    bool matchFrom(int pi, int si) {
    while (pi < p.size()) {
        const QChar c = p[pi];
        if (c == '*') {
            if (pi + 1 < p.size() && p[pi + 1] == '*') {
                // "**": "**/" matches zero or more directories; a trailing "**" matches the rest.
                const bool slashAfter = pi + 2 < p.size() && p[pi + 2] == '/';
                const int rest = slashAfter ? pi + 3 : pi + 2;
                if (rest >= p.size()) return true;
                for (int k = si; k <= s.size(); ++k)
                    if ((k == si || s[k - 1] == '/') && matchHere(rest, k)) return true;
                return false;
            }
            for (int k = si; k <= s.size(); ++k) {
                if (matchHere(pi + 1, k)) return true;
                if (k < s.size() && s[k] == '/') break;
            }
            return false;
        }
        if (si >= s.size()) return false;
        if (c == '?') {
            if (s[si] == '/') return false;
        } else if (c == '[') {
            int j = pi + 1;
            bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
            if (negate) ++j;
            bool matched = false, closed = false;
            for (int first = j; j < p.size(); ++j) {
                if (p[j] == ']' && j > first) {
                    closed = true;
                    break;
                }
                if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
                    if (s[si] >= p[j] && s[si] <= p[j + 2]) matched = true;
                    j += 2;
                } else if (p[j] == s[si]) {
                    matched = true;
                }
            }
            if (!closed) {  // a lone "[" is literal
                if (s[si] != '[') return false;
            } else {
                if (matched == negate || s[si] == '/') return false;
                pi = j;
            }
        } else if (c == '\\' && pi + 1 < p.size()) {
            ++pi;
            if (p[pi] != s[si]) return false;
        } else if (c != s[si]) {
            return false;
        }
        ++pi;
        ++si;
    }
    return si == s.size();
    }
};

}  // namespace

bool globMatch(const QString& pattern, const QString& path) {
    Matcher m(pattern, path);
    return m.matchHere(0, 0);
}

void IgnoreRules::addPattern(const QString& base, const QString& raw) {
    QString line = raw;
    if (line.endsWith('\r')) line.chop(1);
    // Trailing spaces are dropped unless escaped.
    while (line.endsWith(' ') && !line.endsWith("\\ ")) line.chop(1);
    if (line.isEmpty() || line.startsWith('#')) return;
    IgnoreRule r;
    r.base = base;
    if (line.startsWith('!')) {
        r.negate = true;
        line.remove(0, 1);
    } else if (line.startsWith("\\!") || line.startsWith("\\#")) {
        line.remove(0, 1);
    }
    if (line.endsWith('/')) {
        r.dirOnly = true;
        line.chop(1);
    }
    if (line.isEmpty()) return;
    r.anchored = line.contains('/');
    if (line.startsWith('/')) line.remove(0, 1);
    r.pattern = line;
    rules_.append(r);
}

void IgnoreRules::addFile(const QString& base, const QString& text) {
    for (const QString& line : text.split('\n')) addPattern(base, line);
}

bool IgnoreRules::ignored(const QString& path, bool isDir) const {
    bool result = false;
    for (const IgnoreRule& r : rules_) {
        if (r.dirOnly && !isDir) continue;
        QString rel = path;
        if (!r.base.isEmpty()) {
            if (!path.startsWith(r.base + "/")) continue;
            rel = path.mid(r.base.size() + 1);
        }
        const QString subject = r.anchored ? rel : rel.section('/', -1);
        if (globMatch(r.pattern, subject)) result = !r.negate;
    }
    return result;
}

}  // namespace quire::app
