#include "readpath/reader.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "common/log.h"

namespace nydus::readpath {
namespace {

constexpr const char* kLog = "readpath";
constexpr int kMaxIov = 1024;  // IOV_MAX on Linux

thread_local struct iovec t_iov[kMaxIov];

// A READ touches few blobs; remember the ones already looked up so the registry lock is taken
// once per blob, not once per extent. A blob whose chunk is only in its spill (the cache file
// could not take it) has the spill's lock held shared until the READ is done, so the chunk
// cannot be evicted between the check and the read.
class BlobLookup {
 public:
  explicit BlobLookup(const BlobRegistry& reg) : reg_(reg) {}
  const Blob* Get(uint32_t slot) { return Find(slot).blob.get(); }
  const std::shared_ptr<const Blob>& Shared(uint32_t slot) { return Find(slot).blob; }

  // True when chunk `index` can be read now.
  bool Present(uint32_t slot, uint32_t index) {
    Seen& s = Find(slot);
    if (s.blob->chunk_map == nullptr) return true;
    if (s.blob->chunk_map->IsReady(index)) {
      // A non-plain cache file can only be decoded once the chunk's place is recorded (the
      // fill records what it stores, registration what was cached before); a chunk another
      // process cached goes the miss way once, where TypeScript records it.
      const cache::ChunkLayout* layout = s.blob->chunk_map->layout();
      return layout == nullptr || layout->Known(index);
    }
    const cache::Spill* spill = s.blob->chunk_map->spill();
    if (spill == nullptr) return false;
    if (!s.spill_lock.owns_lock()) s.spill_lock = std::shared_lock(spill->mu());
    return spill->IsReady(index);
  }

  // The cache file's layout when chunk `index` must be decoded from it (null: plain bytes,
  // from the cache file or the spill).
  static const cache::ChunkLayout* LayoutFor(const Blob& b, uint32_t index) {
    if (b.chunk_map == nullptr || !b.chunk_map->IsReady(index)) return nullptr;
    return b.chunk_map->layout();
  }

  // The file to read chunk `index` from (Present() said it is there).
  static int FdFor(const Blob& b, uint32_t index) {
    if (b.chunk_map == nullptr || b.chunk_map->IsReady(index)) return b.fd;
    const cache::Spill* spill = b.chunk_map->spill();
    return spill != nullptr ? spill->fd() : b.fd;
  }

 private:
  struct Seen {
    uint32_t slot;
    std::shared_ptr<const Blob> blob;
    std::shared_lock<std::shared_mutex> spill_lock;
  };
  Seen& Find(uint32_t slot) {
    for (auto& s : seen_) {
      if (s.slot == slot) return s;
    }
    seen_.push_back(Seen{slot, reg_.Get(slot), {}});
    return seen_.back();
  }
  const BlobRegistry& reg_;
  std::vector<Seen> seen_;
};

int PreadvAll(int fd, struct iovec* iov, int cnt, uint64_t off, size_t want) {
  size_t done = 0;
  while (cnt > 0) {
    ssize_t n = ::preadv(fd, iov, cnt, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -ENODATA;  // the data file is shorter than the extent says
    done += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (cnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --cnt;
    }
    if (cnt > 0) {
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return done == want ? 0 : -EIO;
}

void LogFailure(const char* what, const Extent& e, int rc) {
  NLOG_ERROR(kLog, "%s failed for blob slot %u chunk %u (source offset %llu, %u bytes): %s", what,
             e.blob_slot, e.chunk_index, static_cast<unsigned long long>(e.source_offset),
             e.source_size, std::strerror(-rc));
}

// The chunk this reader thread decoded last. FUSE READs are at most 1 MiB (often 128 KiB) and
// chunks up to 16 MiB, so sequential READs of one chunk would otherwise decode it again each
// time. The weak_ptr names the blob without keeping it (or its files) alive; a blob registered
// later never matches it, since it cannot share the old one's control block.
struct DecodedChunk {
  std::weak_ptr<const Blob> blob;
  uint32_t index = 0;
  bool valid = false;
  std::vector<uint8_t> plain;

  bool Holds(const std::shared_ptr<const Blob>& b, uint32_t i) const {
    return valid && index == i && !blob.owner_before(b) && !b.owner_before(blob);
  }
};
thread_local DecodedChunk t_decoded;

// Serves [pos, pos + len) of extent `e` from a chunk kept compressed or encrypted: the whole
// chunk is decoded straight into the reply when the READ wants all of it in one slice, else
// into the thread's last-decoded buffer the wanted part is copied from. 0 or -errno.
int ServeDecoded(const cache::ChunkLayout& layout, const std::shared_ptr<const Blob>& blob, int fd,
                 const Extent& e, uint64_t pos, size_t len, const transport::SliceWriter& out,
                 size_t out_pos) {
  if (!layout.Known(e.chunk_index)) return -ENOENT;
  const cache::LayoutChunk& c = layout.Entry(e.chunk_index);
  const uint64_t src = e.source_offset + (pos - e.file_offset);
  if (src < c.uncompressed_offset || src - c.uncompressed_offset > c.uncompressed_size ||
      len > c.uncompressed_size - (src - c.uncompressed_offset)) {
    return -ERANGE;  // the extent and the chunk's recorded place disagree
  }
  const size_t within = static_cast<size_t>(src - c.uncompressed_offset);
  DecodedChunk& d = t_decoded;
  if (!d.Holds(blob, e.chunk_index)) {
    if (within == 0 && len == c.uncompressed_size) {
      if (uint8_t* dst = out.Contiguous(out_pos, len)) {
        return layout.ReadChunk(fd, e.chunk_index, dst, len);
      }
    }
    d.valid = false;
    if (d.plain.size() < c.uncompressed_size) d.plain.resize(c.uncompressed_size);
    const int rc = layout.ReadChunk(fd, e.chunk_index, d.plain.data(), c.uncompressed_size);
    if (rc != 0) return rc;
    d.blob = blob;
    d.index = e.chunk_index;
    d.valid = true;
  }
  return out.Write(out_pos, d.plain.data() + within, len) ? 0 : -EIO;
}

}  // namespace

ReadOutcome ServeRead(const ExtentTable& table, const BlobRegistry& blobs, uint64_t offset,
                      uint32_t size, const transport::SliceWriter& out, size_t payload_pos,
                      std::vector<ChunkRef>* missing, ReadStats* stats,
                      const DecodedSource* decoded) {
  const uint64_t file_size = table.file_size();
  if (offset >= file_size || size == 0 || payload_pos >= out.capacity()) {
    return {ReadStatus::kDone, 0, 0};
  }
  uint64_t n = file_size - offset;
  if (n > size) n = size;
  if (n > out.capacity() - payload_pos) n = out.capacity() - payload_pos;
  const uint64_t end = offset + n;
  const auto ext = table.extents();
  const size_t first = table.FirstEndingAfter(offset);
  BlobLookup lookup(blobs);
  // The extent's bytes in the fill's decoded memory, or null.
  auto held = [decoded](const Extent& e, uint64_t from, uint64_t len) -> const uint8_t* {
    if (decoded == nullptr || e.blob_slot != decoded->slot) return nullptr;
    return decoded->run.Find(e.chunk_index, from, len);
  };

  // Pass 1: every chunk must be present before anything is written, so a parked READ leaves
  // no half-filled reply behind.
  for (size_t j = first; j < ext.size() && ext[j].file_offset < end; ++j) {
    const Extent& e = ext[j];
    if ((e.flags & kExtentHole) != 0) continue;
    const Blob* blob = lookup.Get(e.blob_slot);
    if (blob == nullptr) {
      NLOG_ERROR(kLog, "READ needs blob slot %u, which is not registered", e.blob_slot);
      return {ReadStatus::kError, 0, EIO};
    }
    if (blob->chunk_map != nullptr && e.chunk_index >= blob->chunk_map->chunk_count()) {
      NLOG_ERROR(kLog, "extent names chunk %u of blob slot %u, which has only %u chunks",
                 e.chunk_index, e.blob_slot, blob->chunk_map->chunk_count());
      return {ReadStatus::kError, 0, EIO};
    }
    if (held(e, e.source_offset, e.length) == nullptr &&
        !lookup.Present(e.blob_slot, e.chunk_index)) {
      ChunkRef ref{e.blob_slot, e.chunk_index};
      bool dup = false;
      for (const auto& m : *missing) dup = dup || m == ref;
      if (!dup) missing->push_back(ref);
    }
  }
  if (!missing->empty()) return {ReadStatus::kMissing, 0, 0};

  // Pass 2: fill the reply.
  uint64_t pos = offset;
  size_t j = first;
  auto at = [&](uint64_t file_pos) { return payload_pos + static_cast<size_t>(file_pos - offset); };
  while (pos < end) {
    if (j >= ext.size() || ext[j].file_offset >= end) {
      out.Zero(at(pos), static_cast<size_t>(end - pos));
      if (stats != nullptr) stats->bytes_zero += end - pos;
      break;
    }
    const Extent& e = ext[j];
    if (e.file_offset > pos) {  // uncovered range before this extent: a sparse gap
      out.Zero(at(pos), static_cast<size_t>(e.file_offset - pos));
      if (stats != nullptr) stats->bytes_zero += e.file_offset - pos;
      pos = e.file_offset;
    }
    uint64_t seg_end = e.file_offset + e.length;
    if (seg_end > end) seg_end = end;
    const size_t seg_len = static_cast<size_t>(seg_end - pos);
    if ((e.flags & kExtentHole) != 0) {
      out.Zero(at(pos), seg_len);
      if (stats != nullptr) stats->bytes_zero += seg_len;
      pos = seg_end;
      ++j;
      continue;
    }
    const uint64_t src_start = e.source_offset + (pos - e.file_offset);
    if (const uint8_t* mem = held(e, src_start, seg_len)) {
      if (!out.Write(at(pos), mem, seg_len)) return {ReadStatus::kError, 0, EIO};
      if (stats != nullptr) stats->bytes_from_fill += seg_len;
      pos = seg_end;
      ++j;
      continue;
    }
    const Blob* blob = lookup.Get(e.blob_slot);
    const int fd = BlobLookup::FdFor(*blob, e.chunk_index);
    if (const cache::ChunkLayout* layout = BlobLookup::LayoutFor(*blob, e.chunk_index)) {
      const int rc =
          ServeDecoded(*layout, lookup.Shared(e.blob_slot), fd, e, pos, seg_len, out, at(pos));
      if (rc != 0) {
        LogFailure("decoding the chunk from the cache file", e, rc);
        return {ReadStatus::kError, 0, EIO};
      }
      if (stats != nullptr) stats->bytes_from_cache += seg_len;
      pos = seg_end;
      ++j;
      continue;
    }
    // Extend the run while the next extent continues both the file range and the
    // source range of the same blob in the same file, then read the whole run with one preadv.
    uint64_t run_end = seg_end;
    size_t k = j;
    while (run_end < end && k + 1 < ext.size()) {
      const Extent& a = ext[k];
      const Extent& b = ext[k + 1];
      if (b.flags != 0 || b.blob_slot != a.blob_slot || b.file_offset != a.file_offset + a.length ||
          b.source_offset != a.source_offset + a.length ||
          BlobLookup::FdFor(*blob, b.chunk_index) != fd ||
          BlobLookup::LayoutFor(*blob, b.chunk_index) != nullptr ||
          held(b, b.source_offset, b.length) != nullptr) {
        break;
      }
      ++k;
      run_end = b.file_offset + b.length < end ? b.file_offset + b.length : end;
    }
    const size_t run_len = static_cast<size_t>(run_end - pos);
    int cnt = out.IovecsFor(at(pos), run_len, t_iov, kMaxIov);
    int rc = 0;
    if (cnt >= 0) {
      rc = PreadvAll(fd, t_iov, cnt, src_start, run_len);
      if (stats != nullptr) ++stats->preadv_calls;
    } else {
      // More than IOV_MAX pieces (not produced by Linux guests): read piecewise.
      for (size_t done = 0; done < run_len && rc == 0;) {
        size_t piece = run_len - done < 65536 ? run_len - done : 65536;
        cnt = out.IovecsFor(at(pos) + done, piece, t_iov, kMaxIov);
        rc = cnt < 0 ? -EIO : PreadvAll(fd, t_iov, cnt, src_start + done, piece);
        done += piece;
      }
    }
    if (rc != 0) {
      LogFailure("reading the cache file", e, rc);
      return {ReadStatus::kError, 0, EIO};
    }
    if (stats != nullptr) stats->bytes_from_cache += run_len;
    pos = run_end;
    j = k + 1;
  }
  return {ReadStatus::kDone, static_cast<uint32_t>(n), 0};
}

}  // namespace nydus::readpath
