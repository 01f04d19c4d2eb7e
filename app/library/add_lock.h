#pragma once
// The lock an add holds on a library (DATA/library-N.add.lock) from counting the library's tokens to
// storing its last source, so that two adds at once cannot together pass the context limit.

#include <QLockFile>
#include <QString>

#include <atomic>
#include <functional>
#include <memory>

#include "status.h"

namespace quire::app {

class AddLock {
public:
    // Takes the lock of library `libraryId` in `dataDir`, waiting while another add on this machine
    // holds it, and saying so once, with the process and the file: to onWaiting when given, else on
    // stderr. A set *cancel ends the wait (ErrorCode::cancelled). A lock the holder left behind
    // (its process gone, or now another program or a quire that is not adding, or a file Qt cannot
    // read) is taken over. Refused, naming the file: a lock held on another machine (a shared folder),
    // a path that is not a plain file, a folder that cannot be written.
    static Result<std::unique_ptr<AddLock>> acquire(const QString& dataDir, qint64 libraryId, const QString& libraryName,
                                                    const std::function<void(const QString&)>& onWaiting = {},
                                                    const std::atomic<bool>* cancel = nullptr);

private:
    explicit AddLock(const QString& path) : lock_(path) {}
    QLockFile lock_;
};

}  // namespace quire::app
