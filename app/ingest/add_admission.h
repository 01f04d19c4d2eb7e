#pragma once
// An add's check against the context limit, shared by `quire add` and the window. The library's
// tokens are counted once, as the context assembles them (system prompt included); each source is
// counted before it is stored, so that the sources of one add, and of two adds in turn (add_lock.h),
// cannot together pass the limit, and a kill mid-add cannot leave a source that does not fit.

#include <vector>

#include "ingest/source_ingest.h"
#include "library/library_db.h"
#include "tokenizer.h"

namespace quire::app {

class AddAdmission {
public:
    // tokenizer null (no model configured): nothing can be counted and every source is admitted;
    // the first question counts and refuses instead.
    AddAdmission(LibraryDb& db, const LibraryRow& library, const Tokenizer* tokenizer, qint64 contextLimit, qint64 conversationReserve);

    // addSourceToLibrary's admit: counts the source; refuses (ErrorCode::out_of_range, naming the
    // source and the numbers) one that alone, or with the library, leaves less than the reserve.
    Status admit(const IngestedSource& source);
    // After the admitted source was stored as row sourceId: its tokens join the library's, and its ids
    // are kept for the next question (best effort).
    void stored(qint64 sourceId, const IngestedSource& source);
    qint64 libraryTokens() const { return libraryTokens_; }

private:
    LibraryDb& db_;
    const Tokenizer* tokenizer_;
    qint64 contextLimit_, conversationReserve_;
    qint64 libraryTokens_ = 0;
    std::vector<int32_t> lastIds_;  // the ids of the source admit() counted last
};

}  // namespace quire::app
