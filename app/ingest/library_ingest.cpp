#include "library_ingest.h"

namespace quire::app {

AddedSource addSourceToLibrary(LibraryDb& db, qint64 libraryId, const QString& path, const IngestOptions& options,
                               const std::function<Status(const IngestedSource&)>& admit) {
    AddedSource out;
    out.source = ingestSource(path, options);
    const IngestedSource& s = out.source;
    auto existing = db.sources(libraryId);
    if (!existing) {
        out.stored = existing.status();
        return out;
    }
    // Said before admit counts it (the library's total already holds it).
    for (const SourceRow& r : existing.value())
        if (r.path == s.path && r.status == "ready") {
            out.stored = Status(ErrorCode::invalid_argument, "already in this library");
            return out;
        }
    if (admit)
        if (Status st = admit(s); !st) {
            out.stored = st;
            return out;
        }
    for (const SourceRow& r : existing.value())
        if (r.path == s.path && r.status != "ready")
            if (Status st = db.removeSource(r.id); !st) {
                out.stored = st;
                return out;
            }
    SourceRow row;
    row.libraryId = libraryId;
    row.path = s.path;
    row.kind = s.kind;
    row.contentHash = s.contentHash;
    row.size = s.size;
    row.units = s.units;
    row.status = s.status;
    row.error = s.error;
    row.skipped = s.skipped;
    auto id = db.addSource(row, s.text);
    out.stored = id.status();
    if (id) out.id = id.value();
    return out;
}

}  // namespace quire::app
