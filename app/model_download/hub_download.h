#pragma once
// Downloads a model repository from the Hugging Face Hub (or anything that speaks its protocol):
//   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true   the file list: siblings[] with
//       rfilename, size, blobId (git blob SHA-1) and, for LFS files, lfs.sha256
//   GET {endpoint}/{repo}/resolve/{rev}/{file}                   the file (redirects followed)
// The endpoint is HF_ENDPOINT when set (https://huggingface.co otherwise); HF_TOKEN, when set, is
// sent as a bearer token (gated repositories). Each file is written to FILE.part, resumed with an
// HTTP Range request after a dropped connection (also in a later run), verified (LFS sha256 or git
// blob SHA-1, and the size) and only then renamed to its name. The disk space still needed is
// checked against the free space before anything is downloaded. Runs synchronously on the calling
// thread (its own QNetworkAccessManager and event loop); cancel between network reads.

#include <QString>
#include <QStringList>

#include <atomic>
#include <functional>

#include "status.h"

namespace quire::app {

struct HubFile {
    QString path;    // inside the repository, '/'-separated
    qint64 size = 0;
    QString sha256;  // LFS files
    QString gitOid;  // other files: SHA-1 of "blob SIZE\0CONTENT"
};

struct DownloadProgress {
    QString file;
    qint64 fileDone = 0, fileSize = 0;  // this file
    qint64 done = 0, total = 0;         // all files still to fetch in this run
    double bytesPerSecond = 0, etaSeconds = -1;  // -1: not known yet
};

struct DownloadOptions {
    QString repo = "openbmb/MiniCPM-SALA";
    QString revision = "main";
    QString targetDir;
    QString endpoint;  // empty: HF_ENDPOINT or https://huggingface.co
    QString token;     // empty: HF_TOKEN if set
    int retries = 5;   // resumptions per file after a dropped connection, within one run
    int timeoutMs = 60000;  // no byte for this long: the connection counts as dropped
    // Free bytes on the file system of a folder; replaceable for tests.
    std::function<qint64(const QString& dir)> freeSpace;
    std::function<void(const DownloadProgress&)> onProgress;
    std::function<void(const QString&)> onNotice;  // "resuming x at 1.2 GB", "already there: y"
    const std::atomic<bool>* cancel = nullptr;
};

struct DownloadResult {
    QString targetDir;
    QStringList fetched, alreadyThere;
    qint64 bytesFetched = 0;
};

QString defaultHubEndpoint();
// Bytes free for an unprivileged writer in dir (or its nearest existing parent); -1 when unknown.
qint64 freeDiskSpace(const QString& dir);
// The file list of a repository (also checks the names are safe to write under a folder).
Result<QList<HubFile>> listHubFiles(const DownloadOptions& options);
Result<DownloadResult> downloadModel(const DownloadOptions& options);

}  // namespace quire::app
