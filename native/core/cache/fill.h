// The cache fill: the one place fetched chunks become cached chunks. TypeScript plans and
// fetches; RunFill takes the compressed bytes of one fetched range and, for each run of chunks
// adjacent in the uncompressed blob, decodes them, verifies their digests, hands them to the
// ChunkStore (the cache layout: pwrite + ready bits for `.blob.data`), falls back to the blob's
// in-memory spill when the store fails (ENOSPC, EDQUOT, EIO), and wakes the READs parked on
// them (ChunkMap::NotifyReady). As a run is decoded, chunk after chunk, the READs parked on it are
// offered its decoded bytes (ChunkMap::NotifyDecoded): they are answered from memory, so neither
// the rest of the run's decode nor the cache write is on their path, while their bits are still
// unset (a READ arriving meanwhile parks). It runs
// on the fill pool (fill_pool.h), never on the JS thread.
//
// Invariant (crash consistency): a ready bit is set only after the chunk's bytes were written,
// and never for bytes that failed to decode or validate; a kill at any point leaves no ready
// bit over missing or bad data.
//
// Every number in a plan comes from image metadata (untrusted): ValidatePlan checks each chunk
// against the source buffer and the limits before anything is decoded or written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cache/chunk_map.h"
#include "codec/codec.h"
#include "codec/digest.h"

namespace nydus::cache {

struct FillChunk {
  uint64_t src_offset = 0;   // into the fetched bytes
  uint32_t src_size = 0;     // compressed size (== size when not compressed)
  uint64_t file_offset = 0;  // uncompressed offset in the blob = offset in the cache file
  uint32_t size = 0;         // uncompressed size
  bool compressed = false;
  uint32_t index = 0;       // chunk index in the blob (its ready bit)
  bool has_digest = false;  // verify `digest` (when the job validates)
  uint8_t digest[codec::kDigestLen] = {};
  uint64_t blob_offset = 0;  // compressed offset in the blob (where a compressed cache keeps it)
};

// A chunk's uncompressed size may not exceed this (RAFS chunks are at most 16 MiB).
inline constexpr uint32_t kMaxFillChunk = 16u << 20;
// Chunks per plan (a merged fetch is at most 16 MiB of data).
inline constexpr size_t kMaxFillChunks = 65536;

// Per-chunk outcome of a fill.
inline constexpr int kFillCached = 0;   // in the store (cache file), bit set
inline constexpr int kFillSpilled = 1;  // in the spill (memory), spill bit set
// Negative: -EBADMSG did not decode to exactly `size` bytes; kFillDigestMismatch; else -errno
// of the spill write (the store failed too, see FillResult::store_error).
inline constexpr int kFillDigestMismatch = -1000;
// The store's layout cannot hold the chunk (ChunkStore::Admit): its metadata does not fit.
inline constexpr int kFillBadPlace = -1001;

struct FillJob;

// THE SEAM FOR CACHE LAYOUTS: where decoded, verified chunks go. Store() persists `run`
// (chunks of `job` adjacent in the uncompressed blob, in offset order; `decoded` holds their
// uncompressed bytes back to back, job.src + src_offset their fetched bytes) and publishes them
// (ready bits in job.map) only once they are written to the layout's file. Returns 0, or -errno
// with nothing of the run published. Admit() runs first, once per chunk (before it is decoded):
// 0, or kFillBadPlace when the layout cannot hold that chunk (it is then neither decoded, stored
// nor spilled). The plain `.blob.data` is DataFileStore; the compressed (`.blob.raw`) and
// encrypted caches are LayoutStore (cache/layout_store.h). RunFill, the spill fallback and the
// wake-ups are the same for all.
class ChunkStore {
 public:
  virtual ~ChunkStore() = default;
  virtual int Admit(const FillJob& /*job*/, const FillChunk& /*c*/) { return 0; }
  virtual int Store(const FillJob& job, std::span<const FillChunk* const> run,
                    const uint8_t* decoded) = 0;
};

// The uncompressed `.blob.data` layout: chunks at their uncompressed offsets, one pwrite per run.
class DataFileStore final : public ChunkStore {
 public:
  explicit DataFileStore(int fd) : fd_(fd) {}
  int Store(const FillJob& job, std::span<const FillChunk* const> run,
            const uint8_t* decoded) override;

 private:
  const int fd_;  // owned by the caller, open until the fill completed
};

struct FillJob {
  codec::Algo algo = codec::Algo::kNone;
  codec::DigestAlgo digester = codec::DigestAlgo::kBlake3;
  bool validate = false;
  const uint8_t* src = nullptr;  // the fetched bytes, alive until the fill completed
  size_t src_len = 0;
  std::vector<FillChunk> chunks;      // any order (runs are found in file_offset order)
  std::shared_ptr<ChunkMap> map;      // ready bits, spill, parked-READ wake-ups
  std::unique_ptr<ChunkStore> store;  // null: the cache is not tried now (straight to the spill)
  bool allow_spill = true;
};

struct FillResult {
  std::vector<int> status;  // per chunk of job.chunks, same order; kFill* or -errno
  int store_error = 0;      // first -errno of the store, 0 when it took everything it was given
  int thread_id = 0;        // gettid() of the thread that decoded (tests: never the JS thread)
  int source_error = 0;     // -errno of ReadSource (then nothing was decoded), else 0
};

// The fetched bytes of a local backend, read by the fill thread itself: job->src_len bytes at
// `pos` of `fd` (the blob file, open until the fill completed) into memory this thread keeps
// until its next call (ranges up to a few MiB; larger ones go to `*own`). Sets job->src.
// 0, or -errno (-EIO when the file ends first). Saves the handoff to another thread and back to
// JavaScript that a read by the backend costs.
int ReadSource(FillJob* job, int fd, uint64_t pos, std::unique_ptr<uint8_t[]>* own);

// Empty when every chunk fits `src_len` and the limits; otherwise what is wrong and where.
std::string ValidatePlan(const std::vector<FillChunk>& chunks, size_t src_len);

// Runs the whole fill on the calling thread. The plan must have passed ValidatePlan (a chunk
// outside the source is refused with -EINVAL all the same).
FillResult RunFill(const FillJob& job);

}  // namespace nydus::cache
