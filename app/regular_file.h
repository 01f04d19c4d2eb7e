#pragma once
// Reading a file the user named, safely: only a regular file (not /dev/zero, a FIFO, a socket or a
// device, which would block forever or never end), and only up to a size bound checked before a
// byte is read. The file is opened without blocking and checked through the opened descriptor, so a
// file swapped for a FIFO between the check and the read cannot hang the reader either.

#include <QByteArray>
#include <QString>

#include "status.h"

namespace quire::app {

// The whole file; ErrorCode::invalid_argument naming the problem when it is not a regular file or
// is larger than maxBytes, ErrorCode::io_error when it cannot be opened or read.
Result<QByteArray> readRegularFile(const QString& path, qint64 maxBytes);

// At most the first `bytes` bytes of a regular file (same checks, no size limit).
Result<QByteArray> readRegularFileHead(const QString& path, qint64 bytes);

// The reason in a status from the functions above, without the "PATH: " they start with.
QString fileErrorReason(const Status& status, const QString& path);

// Whether path is a regular file (following links), without opening it.
bool isRegularFile(const QString& path);

}  // namespace quire::app
