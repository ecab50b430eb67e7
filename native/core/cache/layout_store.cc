#include "cache/layout_store.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "cache/exact_io.h"
#include "common/log.h"
#include "common/thread_sched.h"

namespace nydus::cache {

int LayoutStore::Admit(const FillJob& job, const FillChunk& c) {
  const LayoutOptions& o = layout_.options();
  // The layout decodes hits with its own codec; a fill of other bytes would store undecodable
  // chunks (gzip is refused for these layouts before a fill is planned).
  if (job.algo != o.algo) return kFillBadPlace;
  // A convergent key is the chunk digest: without one there is nothing to encrypt under.
  if (o.kind == LayoutKind::kEncrypted && o.convergent && !c.has_digest) return kFillBadPlace;
  LayoutChunk lc;
  lc.uncompressed_offset = c.file_offset;
  lc.compressed_offset = c.blob_offset;
  lc.uncompressed_size = c.size;
  lc.compressed_size = c.src_size;
  lc.compressed = c.compressed;
  lc.has_digest = c.has_digest;
  std::memcpy(lc.digest, c.digest, sizeof lc.digest);
  std::string err;
  if (layout_.Learn(c.index, lc, &err) != 0) {
    NLOG_ERROR("cache", "fill: %s", err.c_str());
    return kFillBadPlace;
  }
  return 0;
}

int LayoutStore::Store(const FillJob& job, std::span<const FillChunk* const> run,
                       const uint8_t* decoded) {
  const int rc = layout_.options().kind == LayoutKind::kRaw ? StoreRaw(job, run)
                                                            : StoreEncrypted(run, decoded);
  if (rc != 0) return rc;
  // ORDERING: the bits after every pwrite of the run returned (crash consistency, fill.h).
  for (const FillChunk* c : run) job.map->SetReady(c->index);
  return 0;
}

int LayoutStore::StoreRaw(const FillJob& job, std::span<const FillChunk* const> run) {
  size_t i = 0;
  while (i < run.size()) {
    const FillChunk& first = *run[i];
    uint64_t src_end = first.src_offset + first.src_size;
    uint64_t blob_end = first.blob_offset + first.src_size;
    size_t j = i + 1;
    for (; j < run.size() && run[j]->src_offset == src_end && run[j]->blob_offset == blob_end;
         ++j) {
      src_end += run[j]->src_size;
      blob_end += run[j]->src_size;
    }
    const int rc =
        PwriteAll(fd_, job.src + first.src_offset, src_end - first.src_offset, first.blob_offset);
    if (rc != 0) return rc;
    i = j;
  }
  return 0;
}

int LayoutStore::StoreEncrypted(std::span<const FillChunk* const> run, const uint8_t* decoded) {
  // Admit checked every offset is 4096-aligned, so in a run (adjacent chunks) only the last
  // chunk can end off a unit: its padded units end the sealed run.
  const uint64_t base = run.front()->file_offset;
  const uint64_t len = RoundUpUnit(run.back()->file_offset + run.back()->size - base);
  std::unique_ptr<uint8_t[]> sealed(new uint8_t[len]);
  const LayoutOptions& o = layout_.options();
  for (const FillChunk* c : run) {
    uint8_t key[kCryptKeyLen];
    ChunkCryptKey(o.key, o.convergent, c->digest, key);
    const uint64_t at = c->file_offset - base;
    if (EncryptUnits(key, decoded + at, c->size, sealed.get() + at) != 0) return -EIO;
    BulkYieldPoint();  // a step boundary (thread_sched.h)
  }
  return PwriteAll(fd_, sealed.get(), len, base);
}

}  // namespace nydus::cache
