// The cache-hit READ path: serves a byte range of a file from its extent table without entering
// JavaScript (DESIGN.md, data path steps 4-5).
//
// ServeRead first checks, for every chunk the range touches, the blob's chunk-map bit. If any is
// missing it reports them (the session parks the READ and asks TypeScript to fill the cache) and
// writes nothing. Otherwise it fills the reply: preadv from the blob's data file straight into the
// writable slices (neighbouring chunks that are contiguous in the file and in the source are one
// preadv), zeros for holes and uncovered ranges, and it stops at end of file or at the end of the
// writable space, whichever comes first. A READ woken by a fill may also take chunks from the
// fill's decoded memory (DecodedSource) before they are written to the cache file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "abi/js_abi.h"
#include "readpath/blob_registry.h"
#include "readpath/extent_table.h"
#include "transport/slices.h"

namespace nydus::readpath {

struct ChunkRef {
  uint32_t slot;
  uint32_t index;
  bool operator==(const ChunkRef&) const = default;
};

enum class ReadStatus : uint8_t { kDone, kMissing, kError };

struct ReadOutcome {
  ReadStatus status;
  uint32_t bytes;  // kDone: payload bytes written (0 at or past EOF)
  int err;         // kError: a positive errno for the reply (EIO for broken caches)
};

struct ReadStats {
  NYDUS_ABI_READ_STATS(NYDUS_ABI_STAT_FIELD)
};

// Chunks of blob `slot` a fill holds decoded in memory before storing them (cache::DecodedRun):
// present for the READ even though their bits are not set yet, and copied from memory.
struct DecodedSource {
  uint32_t slot;
  const cache::DecodedRun& run;
};

// Serves file bytes [offset, offset + size) into `out` starting at byte `payload_pos` (after
// the reply header). `missing` receives each absent chunk once, in file order. `stats` may be
// null; so may `decoded`.
ReadOutcome ServeRead(const ExtentTable& table, const BlobRegistry& blobs, uint64_t offset,
                      uint32_t size, const transport::SliceWriter& out, size_t payload_pos,
                      std::vector<ChunkRef>* missing, ReadStats* stats,
                      const DecodedSource* decoded = nullptr);

}  // namespace nydus::readpath
