#include "library_ingest.h"

namespace quire::app {

AddedSource addSourceToLibrary(LibraryDb& db, qint64 libraryId, const QString& path, const IngestOptions& options,
                               const std::function<Status(const IngestedSource&)>& admit) {
    AddedSource out;
    out.source = ingestSource(path, options);
    const IngestedSource& s = out.source;
    if (admit)
        if (Status st = admit(s); !st) {
            out.stored = st;
            return out;
        }
    auto existing = db.sources(libraryId);
    if (!existing) {
        out.stored = existing.status();
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
