#include "regular_file.h"

#include <QFile>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <cstring>

namespace quire::app {

namespace {
Status fileError(ErrorCode code, const QString& path, const QString& what) {
    return Status(code, (path + ": " + what).toStdString());
}


// Reads at most `limit` bytes; a file larger than maxBytes (when maxBytes >= 0) is refused unread.
Result<QByteArray> readChecked(const QString& path, qint64 maxBytes, qint64 limit) {
    const QByteArray native = QFile::encodeName(path);
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    const int fd = ::open(native.constData(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fileError(ErrorCode::io_error, path, QString("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return fileError(ErrorCode::io_error, path, QString("cannot inspect: ") + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        const char* kind = S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a named pipe"
                           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : S_ISSOCK(st.st_mode) ? "a socket" : "special";
        return fileError(ErrorCode::invalid_argument, path, QString("not a regular file but %1; only regular files are read").arg(kind));
    }
    if (maxBytes >= 0 && st.st_size > maxBytes) {
        ::close(fd);
        return fileError(ErrorCode::invalid_argument, path,
                         QString("too large (%1 bytes, the limit is %2)").arg(static_cast<qint64>(st.st_size)).arg(maxBytes));
    }
    QByteArray bytes;
    bytes.resize(static_cast<qsizetype>(std::min<qint64>(st.st_size, limit)));
    qint64 got = 0;
    while (got < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + got, static_cast<size_t>(bytes.size() - got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            return fileError(ErrorCode::io_error, path, QString("cannot read: ") + std::strerror(e));
        }
        if (n == 0) break;  // the file shrank while being read: keep what is there
        got += n;
    }
    ::close(fd);
    bytes.resize(static_cast<qsizetype>(got));
    return bytes;
}

}  // namespace

Result<QByteArray> readRegularFile(const QString& path, qint64 maxBytes) {
    return readChecked(path, maxBytes, std::numeric_limits<qint64>::max());
}

Result<QByteArray> readRegularFileHead(const QString& path, qint64 bytes) { return readChecked(path, -1, bytes); }

QString fileErrorReason(const Status& status, const QString& path) {
    const QString message = QString::fromStdString(status.message());
    return message.startsWith(path + ": ") ? message.mid(path.size() + 2) : message;
}

bool isRegularFile(const QString& path) {
    struct stat st {};
    return ::stat(QFile::encodeName(path).constData(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace quire::app
