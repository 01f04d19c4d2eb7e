#pragma once
// A 1 MiB tmpfs mounted for a test (root only), which the test fills to play a full disk and empties
// again; unmounted when the object goes.

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QString>

#include <unistd.h>

namespace quire::test {

class SmallDisk {
public:
    explicit SmallDisk(const QString& path) : path_(path) {
        QDir().mkpath(path_);
        mounted_ = ::geteuid() == 0 && QProcess::execute("mount", {"-t", "tmpfs", "-o", "size=1M", "tmpfs", path_}) == 0;
    }
    ~SmallDisk() {
        if (mounted_) QProcess::execute("umount", {path_});
    }
    SmallDisk(const SmallDisk&) = delete;
    SmallDisk& operator=(const SmallDisk&) = delete;

    // False without root or the right to mount: the test skips.
    bool mounted() const { return mounted_; }
    const QString& path() const { return path_; }
    // Writes a file until the disk has no room left (at most 4 MiB: bounded).
    bool fill() {
        QFile filler(path_ + "/filler");
        if (!filler.open(QIODevice::WriteOnly)) return false;
        const QByteArray block(4096, 'x');
        for (int i = 0; i < 1024 && filler.write(block) == block.size() && filler.flush(); ++i) {
        }
        return true;
    }
    bool empty() { return QFile::remove(path_ + "/filler"); }

private:
    QString path_;
    bool mounted_ = false;
};

}  // namespace quire::test
