#pragma once
// Reads the golden fixtures of tools/reference (tests/data/golden/MODEL/manifest.json) and runs an
// engine on a case the way the reference fed it. Shared by test_golden (CPU) and test_gpu_golden.

#include <QCryptographicHash>
#include <QDir>
#include <QFile>

#include <cstring>

#include "engine_test_support.h"
#include "json.h"

namespace quire::test {

inline QString golden_dir() {
    const QByteArray env = qgetenv("QUIRE_GOLDEN_DIR");
    return env.isEmpty() ? QString::fromStdString(test_data("golden")) : QString::fromUtf8(env);
}

inline std::vector<int32_t> read_token_file(const QString& path) {
    QFile f(path);
    f.open(QIODevice::ReadOnly);
    std::vector<int32_t> out;
    for (const QByteArray& w : f.readAll().simplified().split(' '))
        if (!w.isEmpty()) out.push_back(w.toInt());
    return out;
}

inline std::vector<std::vector<float>> read_logit_rows(const QString& path, size_t rows, int64_t vocab) {
    QFile f(path);
    f.open(QIODevice::ReadOnly);
    const QByteArray b = f.readAll();
    if (static_cast<size_t>(b.size()) != rows * static_cast<size_t>(vocab) * 4) qFatal("%s has the wrong size", qPrintable(path));
    std::vector<std::vector<float>> out(rows, std::vector<float>(static_cast<size_t>(vocab)));
    for (size_t r = 0; r < rows; ++r)
        std::memcpy(out[r].data(), b.constData() + r * static_cast<size_t>(vocab) * 4, static_cast<size_t>(vocab) * 4);
    return out;
}

inline std::vector<int64_t> int_list(const JsonValue* v) {
    std::vector<int64_t> out;
    if (v)
        for (const auto& i : v->items()) out.push_back(i.as_int());
    return out;
}

inline JsonValue read_manifest(const QString& fixture) {
    QFile mf(fixture + "/manifest.json");
    if (!mf.open(QIODevice::ReadOnly)) qFatal("no manifest in %s", qPrintable(fixture));
    const QByteArray text = mf.readAll();
    auto parsed = parse_json(std::string_view(text.constData(), static_cast<size_t>(text.size())));
    if (!parsed) qFatal("bad manifest in %s", qPrintable(fixture));
    return parsed.value();
}

// Empty when every model file has the hash the fixtures were made from; else which one changed.
inline std::string changed_model_file(const JsonValue& manifest, const std::string& model_dir) {
    for (const auto& [file, sha] : manifest.find("model_files_sha256")->members()) {
        QFile f(QString::fromStdString(model_dir + "/" + file));
        if (!f.open(QIODevice::ReadOnly)) return file;
        if (QCryptographicHash::hash(f.readAll(), QCryptographicHash::Sha256).toHex().toStdString() != sha.as_string()) return file;
    }
    return {};
}

// Runs one fixture case: one shot, or the reference's prefill / chunks / single tokens.
inline Rows run_golden_case(Engine& engine, const JsonValue& c, const std::vector<int32_t>& tokens, const std::vector<int64_t>& positions) {
    const JsonValue* feed = c.find("feed");
    const auto n = static_cast<int64_t>(tokens.size());
    if (const JsonValue* prefill = feed->find("prefill")) {
        auto seq = engine.new_sequence();
        const int64_t p0 = prefill->as_int(), chunk = feed->find("chunk")->as_int(), dec = feed->find("decode_from")->as_int();
        const std::vector<int32_t> head(tokens.begin(), tokens.begin() + p0);
        Rows got = run_sequence(engine, *seq, head, 0, p0, positions);
        Rows rest = run_sequence(engine, *seq, tokens, chunk, dec, positions);
        got.insert(rest.begin(), rest.end());
        return got;
    }
    return run_fresh(engine, tokens, 0, n, positions);
}

}  // namespace quire::test
