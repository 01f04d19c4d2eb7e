#pragma once
// Adds one path to a library: ingests it and stores the result (a failed or password-protected
// source is stored too, with its reason, so that it can be shown; a new attempt replaces it).

#include <functional>

#include "ingest/source_ingest.h"
#include "library/library_db.h"

namespace quire::app {

struct AddedSource {
    IngestedSource source;
    Status stored;  // ok when the row (and its text) is in the database
    qint64 id = 0;  // the row, when stored
};

// admit, when given, sees the ingested source before anything is stored; a Status it refuses with
// becomes `stored` and nothing is written (so an interrupted add cannot leave a refused source).
AddedSource addSourceToLibrary(LibraryDb& db, qint64 libraryId, const QString& path, const IngestOptions& options,
                               const std::function<Status(const IngestedSource&)>& admit = {});

}  // namespace quire::app
