#include "add_lock.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QSysInfo>
#include <QThread>

#include <cstdio>

#include "process_alive.h"

namespace quire::app {

Result<std::unique_ptr<AddLock>> AddLock::acquire(const QString& dataDir, qint64 libraryId, const QString& libraryName,
                                                  const std::function<void(const QString&)>& onWaiting, const std::atomic<bool>* cancel) {
    const QString path = QDir(dataDir).filePath(QString("library-%1.add.lock").arg(libraryId));
    const QFileInfo info(path);
    if (info.isSymLink() || (info.exists() && !info.isFile()))
        return Status(ErrorCode::io_error, (path + " is not a lock file (a folder, a link or a special file): if no add is running, "
                                                   "remove it and add again")
                                               .toStdString());
    std::unique_ptr<AddLock> held(new AddLock(path));
    QLockFile& lock = held->lock_;
    lock.setStaleLockTime(0);  // by age never: an add of a large PDF takes minutes
    bool said = false;
    for (int unreadable = 0;;) {  // each turn waits (tryLock's second) once the wait was announced
        if (lock.tryLock(said ? 1000 : 0)) return held;
        if (cancel && *cancel) return Status(ErrorCode::cancelled, ("stopped waiting for another add to library '" + libraryName + "'").toStdString());
        if (lock.error() == QLockFile::PermissionError)
            return Status(ErrorCode::io_error, ("cannot lock library '" + libraryName + "' for adding: " + path + ": permission denied").toStdString());
        if (lock.error() != QLockFile::LockFailedError)
            return Status(ErrorCode::io_error, ("cannot lock library '" + libraryName + "' for adding: " + path).toStdString());
        qint64 pid = 0;
        QString host, app;
        const bool readable = lock.getLockInfo(&pid, &host, &app);
        if (!readable && ++unreadable < 3) {
            // Empty or not Qt's format: a holder writes its few bytes at once, so one that stays
            // unreadable was left by a crash (or by someone else).
            QThread::msleep(100);
            continue;
        }
        if (readable && !host.isEmpty() && host != QSysInfo::machineHostName())
            return Status(ErrorCode::io_error, (path + " is held by process " + QString::number(pid) + " on another machine (" + host +
                                                "): if no add is running there, remove it and add again")
                                                   .toStdString());
        // A lock its holder left behind: unreadable, or its process ID now another program's or a quire
        // that is not adding (`quire serve`). Removing it fails while a live process holds the file
        // locked: then it is waited for like any other.
        // This process's own ID: a container gives each run the same low PIDs, so a killed add's
        // lock can name the add that now reads it.
        const std::string p = std::to_string(pid);
        const bool stale = !readable || pid == QCoreApplication::applicationPid() || !same_program_alive(p) || !process_has_argument(p, "add");
        if (stale && lock.removeStaleLockFile()) {
            unreadable = 0;
            continue;
        }
        if (!said) {
            const QString who = readable ? QString("process %1, ").arg(pid) : QString();
            const QString message = "another add to library '" + libraryName + "' is running (" + who + path + "); waiting for it to finish";
            if (onWaiting) onWaiting(message);
            else std::fprintf(stderr, "quire: %s\n", qPrintable(message));
            said = true;
        }
    }
}

}  // namespace quire::app
