#pragma once
// CommandLine: the command-line parser every `quire` subcommand uses (Qt's QCommandLineParser
// underneath). A command declares its options and positional arguments, then parse() either lets it
// run or returns the exit code: 0 after --help (printed on stdout), 2 after a usage error (printed on
// stderr as one line naming the option and the bad value). It accepts "--opt value" and
// "--opt=value", refuses unknown options, and range-checks every number before the command runs.
//
//   CommandLine cl("quire ask", "Ask a question about a library.");
//   cl.addPositional("NAME", "the library");
//   cl.addInt("max-tokens", "N", "most tokens in the answer", 1, 1 << 20, 512);
//   if (auto exit = cl.parse(argc, argv, 2)) return *exit;
//   const int64_t n = cl.integer("max-tokens");

#include <QCommandLineParser>
#include <QString>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace quire::cli {

// A strict whole number: the whole text must be the number (no "12abc", no spaces, no '+'), in the
// C locale whatever the user's locale says (std::from_chars never looks at it).
std::optional<int64_t> parseInteger(const QString& text);

class CommandLine {
public:
    // program: how the usage line names the command ("quire ask"); description: one line.
    CommandLine(const QString& program, const QString& description);

    void addFlag(const QString& name, const QString& help);
    void addText(const QString& name, const QString& valueName, const QString& help, const QString& fallback = {});
    // Text that may be given several times (texts() has every value). Any other option given twice
    // is a usage error, so that "--bits 4 --bits 8" does not silently mean 8.
    void addRepeatableText(const QString& name, const QString& valueName, const QString& help);
    // Integers and floats with an inclusive range; without a fallback the option is simply unset.
    void addInt(const QString& name, const QString& valueName, const QString& help, int64_t min, int64_t max,
                std::optional<int64_t> fallback = std::nullopt);
    void addFloat(const QString& name, const QString& valueName, const QString& help, double min, double max,
                  std::optional<double> fallback = std::nullopt);
    // Text whose value `check` accepts (nullopt) or refuses with the message to print.
    void addChecked(const QString& name, const QString& valueName, const QString& help,
                    std::function<std::optional<QString>(const QString&)> check);
    // One of a fixed set of words (e.g. cpu|cuda).
    void addChoice(const QString& name, const QStringList& choices, const QString& help, const QString& fallback = {});
    // Positional arguments in order; `repeated` takes all the rest (at least one unless optional).
    void addPositional(const QString& name, const QString& help, bool optional = false, bool repeated = false);

    // Parses argv[first..]. nullopt: go on; otherwise the process exit code (message already printed).
    // An argument that is not valid UTF-8 is refused: Qt would turn its bytes into U+FFFD, and a
    // command would then read or write a different path than the one given.
    std::optional<int> parse(int argc, char** argv, int first);
    // Same, from a list of arguments (tests; the UI).
    std::optional<int> parse(const QStringList& arguments);

    bool flag(const QString& name) const;
    bool isSet(const QString& name) const;
    // The option's value, or its fallback; an unset option without a fallback reads as nullopt.
    std::optional<QString> text(const QString& name) const;
    std::optional<int64_t> integer(const QString& name) const;
    std::optional<double> real(const QString& name) const;
    QStringList texts(const QString& name) const;  // every value of a repeatable text option
    const QStringList& positional() const { return positional_; }

    QString helpText() const;
    // Prints "PROGRAM: message" and the --help hint to stderr; returns 2 (the usage-error exit code).
    int usageError(const QString& message) const;

private:
    struct Spec {
        enum class Kind { flag, text, integer, real, choice, checked };
        explicit Spec(Kind k = Kind::text) : kind(k) {}
        Kind kind;
        int64_t imin = 0, imax = 0;
        double fmin = 0, fmax = 0;
        QStringList choices;
        std::function<std::optional<QString>(const QString&)> check;
        std::optional<QString> fallback;
        bool repeatable = false;
    };
    struct PositionalSpec {
        QString name;
        bool optional = false, repeated = false;
    };
    void add(const QString& name, const QString& valueName, const QString& help, Spec spec);
    std::optional<QString> checkValue(const QString& name, const Spec& spec, const QString& value);

    QString program_;
    QCommandLineParser parser_;
    std::map<QString, Spec> specs_;
    std::vector<PositionalSpec> positionalSpecs_;
    std::map<QString, int64_t> integers_;
    std::map<QString, double> reals_;
    QStringList positional_;
};

}  // namespace quire::cli
