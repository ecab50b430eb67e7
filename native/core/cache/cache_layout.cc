#include "cache/cache_layout.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nydus::cache {
namespace {

constexpr uint32_t kMaxStored = kMaxLayoutChunk + (1u << 16);

// Moves exactly `len` bytes at `off` (pread or pwrite), retrying short transfers and EINTR. A
// file that ends first is -EIO (a truncated cache file).
template <typename Io, typename Buf>
int Exact(Io io, int fd, Buf* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = io(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}
int PreadExact(int fd, uint8_t* buf, size_t len, uint64_t off) {
  return Exact(::pread, fd, buf, len, off);
}
int PwriteAll(int fd, const uint8_t* buf, size_t len, uint64_t off) {
  return Exact(::pwrite, fd, buf, len, off);
}

// Per-thread scratch for the stored form of one chunk (reader threads serve many READs).
uint8_t* Scratch(size_t n) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace

ChunkLayout::ChunkLayout(const LayoutOptions& opts, uint32_t chunk_count)
    : opts_(opts),
      chunk_count_(chunk_count),
      pages_(new std::atomic<Slot*>[(chunk_count + kPageSize - 1) / kPageSize]) {
  for (uint32_t i = 0; i < (chunk_count + kPageSize - 1) / kPageSize; ++i) {
    pages_[i].store(nullptr, std::memory_order_relaxed);
  }
}

ChunkLayout::~ChunkLayout() {
  for (uint32_t i = 0; i < (chunk_count_ + kPageSize - 1) / kPageSize; ++i) {
    delete[] pages_[i].load(std::memory_order_relaxed);
  }
}

std::unique_ptr<ChunkLayout> ChunkLayout::Create(const LayoutOptions& opts, uint32_t chunk_count,
                                                 std::string* error) {
  if (opts.kind != LayoutKind::kRaw && opts.kind != LayoutKind::kEncrypted) {
    *error = "unknown cache layout " + std::to_string(static_cast<uint32_t>(opts.kind));
    return nullptr;
  }
  if (opts.algo != codec::Algo::kNone && opts.algo != codec::Algo::kLz4Block &&
      opts.algo != codec::Algo::kZstd) {
    *error = "compression algorithm " + std::to_string(static_cast<uint32_t>(opts.algo)) +
             " is not handled natively";
    return nullptr;
  }
  if (opts.digester != codec::DigestAlgo::kBlake3 && opts.digester != codec::DigestAlgo::kSha256) {
    *error = "unknown digest algorithm";
    return nullptr;
  }
  if (opts.kind == LayoutKind::kEncrypted && !opts.convergent && !CryptKeyUsable(opts.key)) {
    *error = "the encryption key's two halves are equal, which AES-XTS refuses";
    return nullptr;
  }
  if (chunk_count == 0) {
    *error = "a blob without chunks has no cache layout";
    return nullptr;
  }
  return std::unique_ptr<ChunkLayout>(new ChunkLayout(opts, chunk_count));
}

ChunkLayout::Slot* ChunkLayout::SlotFor(uint32_t index, bool create) {
  std::atomic<Slot*>& page = pages_[index >> kPageShift];
  Slot* p = page.load(std::memory_order_acquire);
  if (p == nullptr && create) {
    auto* fresh = new Slot[kPageSize];
    // ORDERING: Learn runs on one thread, but a reader may load the page concurrently; the
    // release publishes the constructed slots.
    if (page.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
      p = fresh;
    } else {
      delete[] fresh;
    }
  }
  return p == nullptr ? nullptr : &p[index & (kPageSize - 1)];
}

const ChunkLayout::Slot* ChunkLayout::SlotFor(uint32_t index) const {
  if (index >= chunk_count_) return nullptr;
  const Slot* p = pages_[index >> kPageShift].load(std::memory_order_acquire);
  return p == nullptr ? nullptr : &p[index & (kPageSize - 1)];
}

int ChunkLayout::Learn(uint32_t index, const LayoutChunk& c, std::string* error) {
  const std::string at = "chunk " + std::to_string(index) + ": ";
  if (index >= chunk_count_) {
    *error = at + "index out of range (" + std::to_string(chunk_count_) + " chunks)";
    return -EINVAL;
  }
  if (c.uncompressed_size == 0 || c.uncompressed_size > kMaxLayoutChunk || c.compressed_size == 0 ||
      c.compressed_size > kMaxStored ||
      (!c.compressed && c.compressed_size != c.uncompressed_size)) {
    *error = at + "invalid sizes";
    return -EINVAL;
  }
  if (opts_.kind == LayoutKind::kRaw) {
    if (c.compressed_offset > opts_.data_size ||
        c.compressed_size > opts_.data_size - c.compressed_offset) {
      *error = at + "compressed range lies outside the blob's compressed data";
      return -EINVAL;
    }
  } else {
    if (c.uncompressed_offset % kCryptUnit != 0) {
      *error = at + "uncompressed offset " + std::to_string(c.uncompressed_offset) +
               " is not 4096-aligned, which the encrypted cache layout needs";
      return -EINVAL;
    }
    if (c.uncompressed_offset > opts_.data_size ||
        c.uncompressed_size > opts_.data_size - c.uncompressed_offset) {
      *error = at + "uncompressed range lies outside the blob";
      return -EINVAL;
    }
  }
  Slot* s = SlotFor(index, true);
  if (s->state.load(std::memory_order_acquire) != 0) {
    const LayoutChunk& o = s->c;
    if (o.uncompressed_offset != c.uncompressed_offset ||
        o.compressed_offset != c.compressed_offset || o.uncompressed_size != c.uncompressed_size ||
        o.compressed_size != c.compressed_size || o.compressed != c.compressed) {
      *error = at + "metadata differs from what was recorded for it before";
      return -EINVAL;
    }
    return 0;
  }
  s->c = c;
  s->state.store(1, std::memory_order_release);
  return 0;
}

bool ChunkLayout::Known(uint32_t index) const {
  const Slot* s = SlotFor(index);
  return s != nullptr && s->state.load(std::memory_order_acquire) != 0;
}

const LayoutChunk& ChunkLayout::Entry(uint32_t index) const { return SlotFor(index)->c; }

bool ChunkLayout::DigestMatches(const LayoutChunk& c, const uint8_t* data) const {
  if (!opts_.verify || !c.has_digest) return true;
  uint8_t d[codec::kDigestLen];
  if (!codec::Digest(opts_.digester, data, c.uncompressed_size, d)) return false;
  return std::memcmp(d, c.digest, sizeof d) == 0;
}

// The stored form of a chunk (as this layout keeps it, `stored_len` bytes) to its plaintext.
int ChunkLayout::Decode(const LayoutChunk& c, const uint8_t* stored, size_t stored_len,
                        uint8_t* out) const {
  if (opts_.kind == LayoutKind::kEncrypted) {
    uint8_t key[kCryptKeyLen];
    ChunkCryptKey(opts_.key, opts_.convergent, c.digest, key);
    if (stored_len < RoundUpUnit(c.uncompressed_size)) return -EIO;
    if (DecryptUnits(key, stored, c.uncompressed_size, out) != 0) return -EIO;
  } else if (c.compressed) {
    if (codec::Decompress(opts_.algo, stored, stored_len, out, c.uncompressed_size) !=
        static_cast<ssize_t>(c.uncompressed_size)) {
      return -EIO;
    }
  } else {
    if (stored_len != c.uncompressed_size) return -EIO;
    if (stored != out) std::memcpy(out, stored, c.uncompressed_size);
  }
  return DigestMatches(c, out) ? 0 : -EIO;
}

int ChunkLayout::ReadChunk(int fd, uint32_t index, uint8_t* out, size_t out_len) const {
  if (!Known(index)) return -ENOENT;
  const LayoutChunk& c = Entry(index);
  if (out_len != c.uncompressed_size) return -EINVAL;
  if (opts_.kind == LayoutKind::kRaw && !c.compressed) {
    // Stored uncompressed in the blob: straight into the caller's buffer.
    int rc = PreadExact(fd, out, c.compressed_size, c.compressed_offset);
    if (rc != 0) return rc;
    return DigestMatches(c, out) ? 0 : -EIO;
  }
  const bool enc = opts_.kind == LayoutKind::kEncrypted;
  const size_t len = enc ? RoundUpUnit(c.uncompressed_size) : c.compressed_size;
  uint8_t* buf = Scratch(len);
  int rc = PreadExact(fd, buf, len, enc ? c.uncompressed_offset : c.compressed_offset);
  if (rc != 0) return rc;
  return Decode(c, buf, len, out);
}

std::vector<int> ChunkLayout::Fill(const uint8_t* src, size_t src_len,
                                   const std::vector<LayoutFillChunk>& chunks, int fd) const {
  std::vector<int> status(chunks.size(), 0);
  std::vector<uint8_t> plain;
  std::vector<uint8_t> sealed;
  // Pass 1: every chunk must decode (and match its digest) before its bytes are written.
  for (size_t i = 0; i < chunks.size(); ++i) {
    const LayoutFillChunk& f = chunks[i];
    if (!Known(f.index)) {
      status[i] = -ENOENT;
      continue;
    }
    const LayoutChunk& c = Entry(f.index);
    if (f.src_offset > src_len || c.compressed_size > src_len - f.src_offset) {
      status[i] = -EINVAL;
      continue;
    }
    const uint8_t* stored = src + f.src_offset;
    plain.resize(c.uncompressed_size);
    int rc = 0;
    if (c.compressed) {
      rc = codec::Decompress(opts_.algo, stored, c.compressed_size, plain.data(),
                             c.uncompressed_size) == static_cast<ssize_t>(c.uncompressed_size)
               ? 0
               : -EBADMSG;
    } else {
      std::memcpy(plain.data(), stored, c.uncompressed_size);
    }
    if (rc == 0 && !DigestMatches(c, plain.data())) rc = -EBADMSG;
    if (rc == 0 && opts_.kind == LayoutKind::kEncrypted) {
      uint8_t key[kCryptKeyLen];
      ChunkCryptKey(opts_.key, opts_.convergent, c.digest, key);
      sealed.resize(RoundUpUnit(c.uncompressed_size));
      rc = EncryptUnits(key, plain.data(), c.uncompressed_size, sealed.data());
      if (rc == 0) rc = PwriteAll(fd, sealed.data(), sealed.size(), c.uncompressed_offset);
    }
    status[i] = rc;
  }
  if (opts_.kind != LayoutKind::kRaw) return status;
  // Pass 2 (raw): the backend's bytes as they are, one pwrite per run of good chunks that follow
  // each other both in the fetched range and in the blob.
  size_t i = 0;
  while (i < chunks.size()) {
    if (status[i] != 0) {
      ++i;
      continue;
    }
    const LayoutChunk& first = Entry(chunks[i].index);
    uint64_t src_end = chunks[i].src_offset + first.compressed_size;
    uint64_t blob_end = first.compressed_offset + first.compressed_size;
    size_t j = i + 1;
    while (j < chunks.size() && status[j] == 0) {
      const LayoutChunk& n = Entry(chunks[j].index);
      if (chunks[j].src_offset != src_end || n.compressed_offset != blob_end) break;
      src_end += n.compressed_size;
      blob_end += n.compressed_size;
      ++j;
    }
    const int rc = PwriteAll(fd, src + chunks[i].src_offset, src_end - chunks[i].src_offset,
                             first.compressed_offset);
    if (rc != 0) {
      for (size_t k = i; k < j; ++k) status[k] = rc;
    }
    i = j;
  }
  return status;
}

}  // namespace nydus::cache
