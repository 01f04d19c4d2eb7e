#include "cli_args.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace quire::cli {

std::optional<int64_t> parseInteger(const QString& text) {
    const std::string s = text.toStdString();
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

namespace {

std::optional<double> parseReal(const QString& text) {
    const std::string s = text.toStdString();
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace

CommandLine::CommandLine(const QString& program, const QString& description) : program_(program) {
    parser_.setApplicationDescription(description);
    parser_.setSingleDashWordOptionMode(QCommandLineParser::ParseAsLongOptions);
    parser_.addOption(QCommandLineOption({"h", "help"}, "Show this help and exit."));
}

void CommandLine::add(const QString& name, const QString& valueName, const QString& help, Spec spec) {
    QString text = help;
    if (spec.kind == Spec::Kind::integer) text += QString(" (%1 to %2)").arg(spec.imin).arg(spec.imax);
    if (spec.kind == Spec::Kind::real) text += QString(" (%1 to %2)").arg(spec.fmin).arg(spec.fmax);
    if (spec.fallback && !spec.fallback->isEmpty()) text += " [default: " + *spec.fallback + "]";
    parser_.addOption(QCommandLineOption(name, text, valueName));
    specs_[name] = std::move(spec);
}

void CommandLine::addFlag(const QString& name, const QString& help) { add(name, {}, help, Spec{Spec::Kind::flag}); }

void CommandLine::addRepeatableText(const QString& name, const QString& valueName, const QString& help) {
    Spec s{Spec::Kind::text};
    s.repeatable = true;
    add(name, valueName, help, s);
}

void CommandLine::addText(const QString& name, const QString& valueName, const QString& help, const QString& fallback) {
    Spec s{Spec::Kind::text};
    if (!fallback.isNull()) s.fallback = fallback;
    add(name, valueName, help, s);
}

void CommandLine::addInt(const QString& name, const QString& valueName, const QString& help, int64_t min, int64_t max,
                         std::optional<int64_t> fallback) {
    Spec s{Spec::Kind::integer};
    s.imin = min;
    s.imax = max;
    if (fallback) {
        s.fallback = QString::number(*fallback);
        integers_[name] = *fallback;
    }
    add(name, valueName, help, s);
}

void CommandLine::addFloat(const QString& name, const QString& valueName, const QString& help, double min, double max,
                           std::optional<double> fallback) {
    Spec s{Spec::Kind::real};
    s.fmin = min;
    s.fmax = max;
    if (fallback) {
        s.fallback = QString::number(*fallback);
        reals_[name] = *fallback;
    }
    add(name, valueName, help, s);
}

void CommandLine::addChecked(const QString& name, const QString& valueName, const QString& help,
                             std::function<std::optional<QString>(const QString&)> check) {
    Spec s{Spec::Kind::checked};
    s.check = std::move(check);
    add(name, valueName, help, s);
}

void CommandLine::addChoice(const QString& name, const QStringList& choices, const QString& help, const QString& fallback) {
    Spec s{Spec::Kind::choice};
    s.choices = choices;
    if (!fallback.isNull()) s.fallback = fallback;
    add(name, choices.join('|'), help, s);
}

void CommandLine::addPositional(const QString& name, const QString& help, bool optional, bool repeated) {
    QString syntax = name;
    if (repeated) syntax += "...";
    if (optional) syntax = "[" + syntax + "]";
    parser_.addPositionalArgument(name, help, syntax);
    positionalSpecs_.push_back({name, optional, repeated});
}

std::optional<QString> CommandLine::checkValue(const QString& name, const Spec& spec, const QString& value) {
    switch (spec.kind) {
    case Spec::Kind::integer: {
        const auto v = parseInteger(value);
        if (!v || *v < spec.imin || *v > spec.imax)
            return QString("--%1 must be a whole number from %2 to %3, not '%4'").arg(name).arg(spec.imin).arg(spec.imax).arg(value);
        integers_[name] = *v;
        return std::nullopt;
    }
    case Spec::Kind::real: {
        const auto v = parseReal(value);
        if (!v || *v < spec.fmin || *v > spec.fmax)
            return QString("--%1 must be a number from %2 to %3, not '%4'").arg(name).arg(spec.fmin).arg(spec.fmax).arg(value);
        reals_[name] = *v;
        return std::nullopt;
    }
    case Spec::Kind::choice:
        if (!spec.choices.contains(value)) return QString("--%1 must be %2, not '%3'").arg(name, spec.choices.join(" or "), value);
        return std::nullopt;
    case Spec::Kind::checked:
        return spec.check ? spec.check(value) : std::nullopt;
    default:
        return std::nullopt;
    }
}

std::optional<int> CommandLine::parse(int argc, char** argv, int first) {
    QStringList arguments{program_};
    for (int i = first; i < argc; ++i) {
        const QByteArray raw(argv[i]);
        const QString text = QString::fromUtf8(raw);
        if (text.toUtf8() != raw) {
            QString shown;  // the valid parts as text, each other byte as \xNN
            for (const char c : raw) {
                const auto b = static_cast<unsigned char>(c);
                shown += b >= 0x20 && b < 0x7f ? QString(QChar(b)) : QString("\\x%1").arg(b, 2, 16, QChar('0'));
            }
            return usageError("argument '" + shown + "' is not valid UTF-8; Quire takes names and paths in UTF-8 (rename the file or folder)");
        }
        arguments << text;
    }
    return parse(arguments);
}

std::optional<int> CommandLine::parse(const QStringList& arguments) {
    if (!parser_.parse(arguments)) return usageError(parser_.errorText());
    if (parser_.isSet("help")) {
        const QByteArray text = helpText().toLocal8Bit();
        std::fwrite(text.constData(), 1, static_cast<size_t>(text.size()), stdout);
        return std::fflush(stdout) == 0 && !std::ferror(stdout) ? 0 : 1;
    }
    for (const auto& [name, spec] : specs_) {
        const QStringList values = parser_.values(name);
        if (values.size() > 1 && !spec.repeatable && spec.kind != Spec::Kind::flag)
            return usageError("--" + name + " is given more than once ('" + values.join("', '") + "')");
        for (const QString& value : values)
            if (auto error = checkValue(name, spec, value)) return usageError(*error);
    }
    positional_ = parser_.positionalArguments();
    size_t required = 0;
    bool unbounded = false;
    for (const PositionalSpec& p : positionalSpecs_) {
        required += p.optional ? 0 : 1;
        unbounded = unbounded || p.repeated;
    }
    if (static_cast<size_t>(positional_.size()) < required) {
        const PositionalSpec& missing = positionalSpecs_[static_cast<size_t>(positional_.size())];
        return usageError("missing " + missing.name);
    }
    if (!unbounded && static_cast<size_t>(positional_.size()) > positionalSpecs_.size())
        return usageError("unexpected argument '" + positional_[static_cast<qsizetype>(positionalSpecs_.size())] + "'");
    return std::nullopt;
}

bool CommandLine::flag(const QString& name) const { return parser_.isSet(name); }
bool CommandLine::isSet(const QString& name) const { return parser_.isSet(name); }

std::optional<QString> CommandLine::text(const QString& name) const {
    if (parser_.isSet(name)) return parser_.value(name);
    const auto it = specs_.find(name);
    if (it != specs_.end() && it->second.fallback) return *it->second.fallback;
    return std::nullopt;
}

std::optional<int64_t> CommandLine::integer(const QString& name) const {
    const auto it = integers_.find(name);
    if (it == integers_.end()) return std::nullopt;
    return it->second;
}

std::optional<double> CommandLine::real(const QString& name) const {
    const auto it = reals_.find(name);
    if (it == reals_.end()) return std::nullopt;
    return it->second;
}

QStringList CommandLine::texts(const QString& name) const { return parser_.values(name); }

QString CommandLine::helpText() const {
    // Written here rather than by QCommandLineParser::helpText(), which needs a QCoreApplication.
    QString usage = "Usage: " + program_ + " [options]";
    for (const PositionalSpec& p : positionalSpecs_) {
        QString syntax = p.name + (p.repeated ? "..." : "");
        usage += " " + (p.optional ? "[" + syntax + "]" : syntax);
    }
    QString text = usage + "\n" + parser_.applicationDescription() + "\n\nOptions:\n";
    const QString help = parser_.helpText();
    // QCommandLineParser's own listing of options and arguments: keep it from "Options:" on.
    const qsizetype at = help.indexOf("Options:\n");
    text += at >= 0 ? help.mid(at + 9) : QString();
    return text;
}

int CommandLine::usageError(const QString& message) const {
    std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", qPrintable(program_), qPrintable(message), qPrintable(program_));
    return 2;
}

}  // namespace quire::cli
