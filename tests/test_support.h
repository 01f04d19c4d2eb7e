#pragma once
// Helpers shared by the Qt Test executables: where the tiny models and fixtures are, temporary
// copies of model folders, raw file edits.

#include <QByteArray>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QString>
#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>
#include <string>

namespace quire::test {

inline std::string tiny_model(const char* name) { return std::string(QUIRE_TINY_MODELS_DIR) + "/" + name; }
inline std::string test_data(const char* rel) { return std::string(QUIRE_TEST_DATA_DIR) + "/" + rel; }
inline std::string quire_binary() { return QUIRE_BINARY; }

// Copies a folder (non-recursive) into dest.
inline void copy_folder(const std::string& from, const std::string& to) {
    std::filesystem::create_directories(to);
    for (const auto& e : std::filesystem::directory_iterator(from))
        std::filesystem::copy_file(e.path(), std::filesystem::path(to) / e.path().filename(),
                                   std::filesystem::copy_options::overwrite_existing);
}

inline QByteArray read_all(const std::string& path) {
    QFile f(QString::fromStdString(path));
    if (!f.open(QIODevice::ReadOnly)) return {};
    return f.readAll();
}

// Writes a file, creating its folder.
inline void put(const QString& path, const QByteArray& bytes) {
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    f.open(QIODevice::WriteOnly | QIODevice::Truncate);
    f.write(bytes);
}

inline bool write_all(const std::string& path, const QByteArray& bytes) {
    QFile f(QString::fromStdString(path));
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) return false;
    return f.write(bytes) == bytes.size();
}

}  // namespace quire::test
