#include "cache/fill.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "cache/exact_io.h"
#include "common/thread_sched.h"

namespace nydus::cache {
namespace {

constexpr uint64_t kMaxSafe = uint64_t{1} << 53;
// A run's decode buffer; larger adjacent stretches become several runs.
constexpr uint64_t kMaxRun = uint64_t{64} << 20;
// Runs up to this size decode into a buffer each thread keeps: a fresh multi-MiB allocation is a
// fresh mapping whose every page faults on first touch (about 5% of a cold lz4 read's CPU when it
// was new per run). Larger runs (amplified or readahead fetches) get a buffer of their own, so a
// fill thread holds at most this much between fills.
constexpr uint64_t kKeptDecodeBuffer = uint64_t{4} << 20;
// ReadSource reads at most this much (the largest backend read, kMaxBackendRead in TypeScript).
constexpr uint64_t kMaxSource = uint64_t{256} << 20;
// Decoded chunks are offered to parked READs at least every this many bytes of a run (besides its
// first chunk and the end of each stretch), so a READ waits for its own chunk's decode rather
// than its whole run's; not after every chunk, since an offer costs a lock and a lookup of the
// READs parked on its new chunks (small chunks would pay that more often than it saves).
constexpr uint64_t kOfferEvery = uint64_t{64} << 10;

// A buffer of `n` bytes from `kept` (allocated once per thread, kKeptDecodeBuffer bytes), valid
// until the next call with the same `kept`; `own` holds it when it is larger.
uint8_t* KeptBuffer(std::unique_ptr<uint8_t[]>& kept, uint64_t n, std::unique_ptr<uint8_t[]>* own) {
  if (n > kKeptDecodeBuffer) {
    own->reset(new uint8_t[n]);
    return own->get();
  }
  // Only the pages a run touched become resident.
  if (!kept) kept.reset(new uint8_t[kKeptDecodeBuffer]);
  return kept.get();
}

// A decode buffer of `n` bytes, valid until the next call on this thread.
uint8_t* DecodeBuffer(uint64_t n, std::unique_ptr<uint8_t[]>* own) {
  thread_local std::unique_ptr<uint8_t[]> kept;
  return KeptBuffer(kept, n, own);
}

// Decodes (and verifies) one chunk into `dst`; kFillCached or its failure status.
int DecodeOne(const FillJob& job, const FillChunk& c, uint8_t* dst) {
  if (c.src_offset > job.src_len || c.src_size > job.src_len - c.src_offset) return -EINVAL;
  const uint8_t* src = job.src + c.src_offset;
  if (!c.compressed) {
    if (c.src_size != c.size) return -EINVAL;
    std::memcpy(dst, src, c.size);
  } else if (codec::Decompress(job.algo, src, c.src_size, dst, c.size) !=
             static_cast<ssize_t>(c.size)) {
    return -EBADMSG;
  }
  // Step boundaries (the decode and the digest of a chunk take about a millisecond each): a loop
  // waiting behind this thread gets the CPU here, not at the next tick (thread_sched.h).
  BulkYieldPoint();
  if (job.validate && c.has_digest) {
    uint8_t got[codec::kDigestLen];
    if (!codec::Digest(job.digester, dst, c.size, got)) return -ENOMEM;
    if (std::memcmp(got, c.digest, codec::kDigestLen) != 0) return kFillDigestMismatch;
    BulkYieldPoint();
  }
  return kFillCached;
}

// Keeps `run` in the blob's spill (the store did not take it). 0 or -errno.
int SpillRun(const FillJob& job, std::span<const FillChunk* const> run, const uint8_t* decoded) {
  std::string err;
  Spill* spill = job.map->EnsureSpill(&err);
  if (spill == nullptr) return -ENOMEM;
  const uint64_t from = run.front()->file_offset;
  const uint64_t to = run.back()->file_offset + run.back()->size;
  const int rc = PwriteAll(spill->fd(), decoded, to - from, from);
  if (rc != 0) return rc;
  for (const FillChunk* c : run) spill->SetReady(c->index);
  return 0;
}

}  // namespace

int DataFileStore::Store(const FillJob& job, std::span<const FillChunk* const> run,
                         const uint8_t* decoded) {
  const uint64_t from = run.front()->file_offset;
  const uint64_t to = run.back()->file_offset + run.back()->size;
  const int rc = PwriteAll(fd_, decoded, to - from, from);
  if (rc != 0) return rc;
  // ORDERING: the bits after the pwrite returned (crash consistency, see fill.h).
  for (const FillChunk* c : run) job.map->SetReady(c->index);
  return 0;
}

int ReadSource(FillJob* job, int fd, uint64_t pos, std::unique_ptr<uint8_t[]>* own) {
  if (fd < 0 || job->src_len == 0 || job->src_len > kMaxSource || pos >= kMaxSafe ||
      job->src_len > kMaxSafe - pos) {
    return -EINVAL;
  }
  thread_local std::unique_ptr<uint8_t[]> kept;
  uint8_t* buf = KeptBuffer(kept, job->src_len, own);
  const int rc = PreadExact(fd, buf, job->src_len, pos);
  if (rc != 0) return rc;
  job->src = buf;
  return 0;
}

std::string ValidatePlan(const std::vector<FillChunk>& chunks, size_t src_len) {
  if (chunks.size() > kMaxFillChunks) return "too many chunks in one fill";
  for (size_t i = 0; i < chunks.size(); ++i) {
    const FillChunk& c = chunks[i];
    const std::string at = "chunk " + std::to_string(i) + ": ";
    if (c.size == 0 || c.size > kMaxFillChunk) return at + "invalid uncompressed size";
    if (c.src_size == 0 || c.src_size > kMaxFillChunk + (1u << 16))
      return at + "invalid stored size";
    if (!c.compressed && c.src_size != c.size) return at + "stored and uncompressed sizes differ";
    if (c.src_offset > src_len || c.src_size > src_len - c.src_offset) {
      return at + "stored range is outside the fetched bytes";
    }
    if (c.file_offset >= kMaxSafe || c.size > kMaxSafe - c.file_offset) {
      return at + "file offset out of range";
    }
  }
  return {};
}

FillResult RunFill(const FillJob& job) {
  FillResult res;
  res.thread_id = static_cast<int>(::syscall(SYS_gettid));
  const size_t n = job.chunks.size();
  res.status.assign(n, kFillCached);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return job.chunks[a].file_offset < job.chunks[b].file_offset;
  });
  // The stretch of good chunks being decoded: positions in job.chunks, and their indices and
  // offsets as DecodedRun offers them.
  std::vector<const FillChunk*> good;
  std::vector<size_t> good_pos;
  std::vector<uint32_t> indices;
  std::vector<uint64_t> offsets;
  size_t i = 0;
  while (i < n) {
    // A run: chunks whose uncompressed ranges follow each other.
    const FillChunk& head = job.chunks[order[i]];
    const uint64_t base = head.file_offset;
    uint64_t end = base + head.size;
    size_t j = i + 1;
    while (j < n && job.chunks[order[j]].file_offset == end && end - base < kMaxRun) {
      end += job.chunks[order[j]].size;
      ++j;
    }
    std::unique_ptr<uint8_t[]> own;
    uint8_t* const buf = DecodeBuffer(end - base, &own);
    size_t offered = 0;      // chunks of the stretch offered already
    uint64_t unoffered = 0;  // bytes decoded since the last offer
    // READs parked on the stretch's new chunks are answered from the decoded bytes (the cache
    // write, or the spill when the cache takes no writes, is then off their path).
    auto offer = [&] {
      if (offered == good.size()) return;
      job.map->NotifyDecoded(DecodedRun{indices, offsets,
                                        good.back()->file_offset + good.back()->size,
                                        buf + (good.front()->file_offset - base), offered});
      offered = good.size();
      unoffered = 0;
    };
    // Stores the stretch with one call (a bad chunk is never written) and publishes it.
    auto store = [&] {
      if (good.empty()) return;
      offer();
      const uint8_t* bytes = buf + (good.front()->file_offset - base);
      int rc = job.store ? job.store->Store(job, good, bytes) : -ENOSPC;
      int outcome = kFillCached;
      if (rc != 0) {
        if (job.store && res.store_error == 0) res.store_error = rc;
        outcome = job.allow_spill ? SpillRun(job, good, bytes) : rc;
        if (outcome == 0) outcome = kFillSpilled;
      }
      for (size_t pos : good_pos) res.status[pos] = outcome;
      if (outcome == kFillCached || outcome == kFillSpilled) job.map->NotifyReady(indices);
      good.clear();
      good_pos.clear();
      indices.clear();
      offsets.clear();
      offered = 0;
      unoffered = 0;
    };
    for (size_t k = i; k < j; ++k) {
      const FillChunk& c = job.chunks[order[k]];
      int st = job.store ? job.store->Admit(job, c) : 0;
      if (st == 0) st = DecodeOne(job, c, buf + (c.file_offset - base));
      res.status[order[k]] = st;
      if (st != kFillCached) {
        store();
        continue;
      }
      good.push_back(&c);
      good_pos.push_back(order[k]);
      indices.push_back(c.index);
      offsets.push_back(c.file_offset);
      // The first chunk of a stretch is offered at once: a miss's own chunk leads its range
      // (amplification appends the ones after it), so its READ waits for that chunk's decode
      // only, not the whole run's.
      unoffered += c.size;
      if (offered == 0 || unoffered >= kOfferEvery) offer();
    }
    store();
    i = j;
  }
  return res;
}

}  // namespace nydus::cache
