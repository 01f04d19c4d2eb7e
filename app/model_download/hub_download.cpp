#include "hub_download.h"

#include <sys/statvfs.h>

#include <QCryptographicHash>
#include <QDir>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QRegularExpression>
#include <QTimer>
#include <QUrl>

namespace quire::app {

namespace {

QString gigabytes(qint64 bytes) { return QString::number(double(bytes) / 1e9, 'f', 2) + " GB"; }

QString endpointOf(const DownloadOptions& o) {
    QString e = o.endpoint.isEmpty() ? defaultHubEndpoint() : o.endpoint;
    while (e.endsWith('/')) e.chop(1);
    return e;
}

QNetworkRequest requestFor(const QUrl& url, const DownloadOptions& o) {
    QNetworkRequest r(url);
    r.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::NoLessSafeRedirectPolicy);
    r.setHeader(QNetworkRequest::UserAgentHeader, "quire-model-download");
    const QString token = o.token.isEmpty() ? qEnvironmentVariable("HF_TOKEN") : o.token;
    if (!token.isEmpty()) r.setRawHeader("Authorization", "Bearer " + token.toUtf8());
    return r;
}

bool cancelled(const DownloadOptions& o) { return o.cancel && o.cancel->load(); }

// A path from the server is written under the target folder: nothing absolute, no "..", no
// backslashes, nothing inside .git.
bool safeRepoPath(const QString& p) {
    if (p.isEmpty() || p.startsWith('/') || p.contains('\\') || p.contains(QChar(0)) || p.startsWith(".git/")) return false;
    for (const QString& part : p.split('/'))
        if (part.isEmpty() || part == "." || part == "..") return false;
    return true;
}

// Runs `reply` to its end, aborting it when cancelled or when no byte came for timeoutMs.
// Returns true if it was aborted for silence.
bool waitFor(QNetworkReply* reply, const DownloadOptions& o, const std::function<void()>& onData) {
    QEventLoop loop;
    QTimer idle, poll;
    bool silent = false;
    idle.setSingleShot(true);
    idle.start(o.timeoutMs);
    poll.start(100);
    QObject::connect(reply, &QNetworkReply::readyRead, &loop, [&] {
        idle.start(o.timeoutMs);
        if (onData) onData();
    });
    QObject::connect(reply, &QNetworkReply::finished, &loop, &QEventLoop::quit);
    QObject::connect(&idle, &QTimer::timeout, &loop, [&] {
        silent = true;
        reply->abort();
    });
    QObject::connect(&poll, &QTimer::timeout, &loop, [&] {
        if (cancelled(o)) reply->abort();
    });
    if (!reply->isFinished()) loop.exec();
    return silent;
}

QString httpProblem(QNetworkReply* reply, const QString& what) {
    const int code = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (code == 401 || code == 403)
        return what + QString(": access refused (HTTP %1); a gated repository needs HF_TOKEN set to a token that may read it").arg(code);
    if (code == 404) return what + ": not found (HTTP 404)";
    if (code) return what + QString(": HTTP %1 %2").arg(code).arg(reply->attribute(QNetworkRequest::HttpReasonPhraseAttribute).toString());
    return what + ": " + reply->errorString();
}

QString fileHash(const QString& path, QCryptographicHash::Algorithm algorithm, const QByteArray& prefix) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    QCryptographicHash h(algorithm);
    h.addData(prefix);
    if (!h.addData(&f)) return {};
    return h.result().toHex();
}

// Empty when `path` is the file the hub describes; otherwise what is wrong.
QString verify(const QString& path, const HubFile& f) {
    const qint64 size = QFileInfo(path).size();
    if (size != f.size) return QString("size %1 bytes, the hub says %2").arg(size).arg(f.size);
    if (!f.sha256.isEmpty()) {
        const QString got = fileHash(path, QCryptographicHash::Sha256, {});
        if (got.compare(f.sha256, Qt::CaseInsensitive) != 0) return "sha256 " + got + ", the hub says " + f.sha256;
    } else if (!f.gitOid.isEmpty()) {
        const QString got = fileHash(path, QCryptographicHash::Sha1, "blob " + QByteArray::number(f.size) + '\0');
        if (got.compare(f.gitOid, Qt::CaseInsensitive) != 0) return "git blob id " + got + ", the hub says " + f.gitOid;
    }
    return {};
}

// Download speed over the last few seconds, for the ETA.
class Rate {
public:
    void add(qint64 bytes) {
        if (!clock_.isValid()) clock_.start();
        window_ += bytes;
        const qint64 ms = clock_.elapsed();
        if (ms >= 500) {
            const double now = double(window_) * 1000.0 / double(ms);
            rate_ = rate_ <= 0 ? now : 0.7 * rate_ + 0.3 * now;
            window_ = 0;
            clock_.restart();
        }
    }
    double perSecond() const { return rate_; }

private:
    QElapsedTimer clock_;
    qint64 window_ = 0;
    double rate_ = 0;
};

struct Run {
    explicit Run(const DownloadOptions& options) : o(options) {}
    const DownloadOptions& o;
    QNetworkAccessManager net;
    DownloadProgress progress;
    Rate rate;
    DownloadResult result;

    void report(qint64 bytes) {
        progress.fileDone += bytes;
        progress.done += bytes;
        rate.add(bytes);
        progress.bytesPerSecond = rate.perSecond();
        progress.etaSeconds = progress.bytesPerSecond > 0 ? double(progress.total - progress.done) / progress.bytesPerSecond : -1;
        if (o.onProgress) o.onProgress(progress);
    }
    void notice(const QString& s) {
        if (o.onNotice) o.onNotice(s);
    }

    // One request from the end of FILE.part. Sets `dropped` when the connection broke off (worth
    // resuming); returns an error for anything else that went wrong.
    Status fetchOnce(const HubFile& f, const QString& part, bool& dropped) {
        dropped = false;
        QFile out(part);
        if (!out.open(QIODevice::ReadWrite)) return Status(ErrorCode::io_error, ("cannot write " + part + ": " + out.errorString()).toStdString());
        qint64 offset = out.size();
        if (offset > f.size) {
            out.resize(0);
            offset = 0;
        }
        if (offset == f.size) return Status::ok();
        out.seek(offset);
        const QUrl url(endpointOf(o) + "/" + o.repo + "/resolve/" + o.revision + "/" + f.path);
        QNetworkRequest request = requestFor(url, o);
        if (offset > 0) request.setRawHeader("Range", "bytes=" + QByteArray::number(offset) + "-");
        std::unique_ptr<QNetworkReply> reply(net.get(request));
        bool checkedStatus = false;
        QString writeError;
        auto onData = [&] {
            if (!checkedStatus) {
                checkedStatus = true;
                const int code = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
                if (code == 200 && offset > 0) {  // the server ignored the range: start over
                    progress.fileDone -= offset;
                    progress.total += offset;  // those bytes come again
                    out.resize(0);
                    out.seek(0);
                    offset = 0;
                } else if (code != 200 && code != 206) {
                    return;  // an error body; reported below
                }
            }
            const QByteArray bytes = reply->readAll();
            if (!writeError.isEmpty()) return;
            if (out.write(bytes) != bytes.size()) {
                writeError = out.errorString();
                reply->abort();
                return;
            }
            report(bytes.size());
        };
        const bool silent = waitFor(reply.get(), o, onData);
        onData();  // whatever arrived with the end
        out.close();
        if (!writeError.isEmpty())
            return Status(ErrorCode::io_error, ("cannot write " + part + ": " + writeError + " (what was written is kept for a later run)").toStdString());
        if (cancelled(o)) return Status(ErrorCode::cancelled, "download cancelled; run it again to resume");
        const int code = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
        if (code >= 400 || (code == 0 && !silent && reply->error() != QNetworkReply::RemoteHostClosedError &&
                            reply->error() != QNetworkReply::NoError && reply->error() != QNetworkReply::TemporaryNetworkFailureError)) {
            if (code == 416 && QFileInfo(part).size() == f.size) return Status::ok();
            return Status(ErrorCode::io_error, httpProblem(reply.get(), f.path).toStdString());
        }
        dropped = QFileInfo(part).size() < f.size;
        return Status::ok();
    }

    Status fetch(const HubFile& f, const QString& target) {
        const QString part = target + ".part";
        QDir().mkpath(QFileInfo(target).absolutePath());
        progress.file = f.path;
        progress.fileSize = f.size;
        progress.fileDone = QFileInfo(part).size();
        if (progress.fileDone > 0 && progress.fileDone < f.size) notice(QString("resuming %1 at %2").arg(f.path, gigabytes(progress.fileDone)));
        if (progress.fileDone == f.size && !verify(part, f).isEmpty()) {
            notice("starting " + f.path + " over: the complete download left by an earlier run does not match the hub");
            QFile::remove(part);
            progress.fileDone = 0;
        }
        for (int attempt = 0;; ++attempt) {
            bool dropped = false;
            QUIRE_TRY(fetchOnce(f, part, dropped));
            if (!dropped) break;
            if (attempt >= o.retries)
                return Status(ErrorCode::io_error, QString("%1: the connection kept dropping (%2 tries); %3 of it is kept, run again to resume")
                                                       .arg(f.path).arg(attempt + 1).arg(gigabytes(QFileInfo(part).size())).toStdString());
            notice(QString("connection dropped in %1 at %2; resuming").arg(f.path, gigabytes(QFileInfo(part).size())));
        }
        if (const QString bad = verify(part, f); !bad.isEmpty())
            return Status(ErrorCode::invalid_checkpoint, QString("%1 does not match the hub (%2); not used. The download is kept as %3; "
                                                           "a later run fetches it again")
                                                       .arg(f.path, bad, part).toStdString());
        QFile::remove(target);
        if (!QFile::rename(part, target)) return Status(ErrorCode::io_error, ("cannot rename " + part + " to " + target).toStdString());
        result.fetched << f.path;
        return Status::ok();
    }
};

}  // namespace

QString defaultHubEndpoint() {
    const QString e = qEnvironmentVariable("HF_ENDPOINT");
    return e.isEmpty() ? QString("https://huggingface.co") : e;
}

qint64 freeDiskSpace(const QString& dir) {
    QString d = QFileInfo(dir).absoluteFilePath();
    while (!QFileInfo::exists(d) && d != QFileInfo(d).path()) d = QFileInfo(d).path();  // the nearest folder that exists
    // statvfs asks the file system itself. QStorageInfo goes through the mount table, which in a
    // chroot or some containers names no mount for the path and then reports nothing free.
    struct statvfs v {};
    if (::statvfs(QFile::encodeName(d).constData(), &v) != 0) return -1;
    return static_cast<qint64>(v.f_bavail) * static_cast<qint64>(v.f_frsize);
}

Result<QList<HubFile>> listHubFiles(const DownloadOptions& o) {
    static const QRegularExpression repoName("^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$");
    if (!repoName.match(o.repo).hasMatch())
        return Status(ErrorCode::invalid_argument, ("'" + o.repo + "' is not a repository name (OWNER/NAME)").toStdString());
    const QUrl url(endpointOf(o) + "/api/models/" + o.repo + "/revision/" + o.revision + "?blobs=true");
    if (!url.isValid() || (url.scheme() != "http" && url.scheme() != "https"))
        return Status(ErrorCode::invalid_argument, ("not an http(s) endpoint: " + endpointOf(o)).toStdString());
    QNetworkAccessManager net;
    std::unique_ptr<QNetworkReply> reply(net.get(requestFor(url, o)));
    const bool silent = waitFor(reply.get(), o, nullptr);
    if (cancelled(o)) return Status(ErrorCode::cancelled, "cancelled");
    if (silent) return Status(ErrorCode::io_error, ("no answer from " + endpointOf(o) + " within " + QString::number(o.timeoutMs / 1000) + " s").toStdString());
    if (reply->error() != QNetworkReply::NoError)
        return Status(ErrorCode::io_error, httpProblem(reply.get(), "the file list of " + o.repo + " at " + endpointOf(o)).toStdString());
    QJsonParseError err{};
    const QJsonDocument doc = QJsonDocument::fromJson(reply->readAll(), &err);
    if (err.error != QJsonParseError::NoError || !doc.object().value("siblings").isArray())
        return Status(ErrorCode::parse_error, ("the hub's file list of " + o.repo + " is not what the hub sends (no siblings)").toStdString());
    QList<HubFile> files;
    for (const QJsonValue& v : doc.object().value("siblings").toArray()) {
        const QJsonObject s = v.toObject();
        HubFile f;
        f.path = s.value("rfilename").toString();
        if (!safeRepoPath(f.path)) return Status(ErrorCode::parse_error, ("the hub lists an unsafe file name: '" + f.path + "'").toStdString());
        const QJsonObject lfs = s.value("lfs").toObject();
        f.size = static_cast<qint64>(lfs.isEmpty() ? s.value("size").toDouble(-1) : lfs.value("size").toDouble(-1));
        f.sha256 = lfs.value("sha256").toString();
        f.gitOid = lfs.isEmpty() ? s.value("blobId").toString() : QString();
        if (f.size < 0) return Status(ErrorCode::parse_error, ("the hub gives no size for " + f.path).toStdString());
        files.append(f);
    }
    if (files.isEmpty()) return Status(ErrorCode::parse_error, (o.repo + " has no files").toStdString());
    return files;
}

Result<DownloadResult> downloadModel(const DownloadOptions& o) {
    if (o.targetDir.isEmpty()) return Status(ErrorCode::invalid_argument, "no target folder");
    auto listed = listHubFiles(o);
    if (!listed) return listed.status();
    const QList<HubFile> files = listed.value();
    Run run(o);
    run.result.targetDir = QFileInfo(o.targetDir).absoluteFilePath();
    const QDir dir(run.result.targetDir);
    // What is still to fetch, and the space it needs, before anything is written.
    QList<HubFile> todo;
    qint64 needed = 0;
    for (const HubFile& f : files) {
        const QString target = dir.filePath(f.path);
        if (QFileInfo::exists(target) && verify(target, f).isEmpty()) {
            run.result.alreadyThere << f.path;
            continue;
        }
        todo.append(f);
        const qint64 part = QFileInfo(target + ".part").size();
        needed += f.size - (part <= f.size ? part : 0);
    }
    const qint64 free = o.freeSpace ? o.freeSpace(run.result.targetDir) : freeDiskSpace(run.result.targetDir);
    if (free < 0) run.notice("the free disk space of " + run.result.targetDir + " cannot be read; the download goes ahead unchecked");
    else if (needed > free)
        return Status(ErrorCode::out_of_memory, QString("not enough disk space in %1: %2 needs %3 more, %4 free")
                                                    .arg(run.result.targetDir, o.repo, gigabytes(needed), gigabytes(free))
                                                    .toStdString());
    if (!dir.mkpath(".")) return Status(ErrorCode::io_error, ("cannot create " + run.result.targetDir).toStdString());
    for (const HubFile& f : todo) run.progress.total += f.size - std::min(f.size, QFileInfo(dir.filePath(f.path) + ".part").size());
    for (const QString& p : run.result.alreadyThere) run.notice("already there: " + p);
    for (const HubFile& f : todo) {
        const qint64 before = run.progress.done;
        QUIRE_TRY(run.fetch(f, dir.filePath(f.path)));
        run.result.bytesFetched += run.progress.done - before;
    }
    return run.result;
}

}  // namespace quire::app
