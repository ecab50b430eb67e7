#include "cache/cache_layout.h"

#include <cerrno>
#include <cstring>

#include "cache/exact_io.h"

namespace nydus::cache {
namespace {

constexpr uint32_t kMaxStored = kMaxLayoutChunk + (1u << 16);

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
    // ORDERING: Learn holds learn_mu_, but a reader may load the page concurrently; the
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
  // Fill threads and the JS thread learn concurrently; readers only load published slots.
  std::lock_guard lock(learn_mu_);
  Slot* s = SlotFor(index, true);
  if (s->state.load(std::memory_order_acquire) != 0) {
    const LayoutChunk& o = s->c;
    if (o.uncompressed_offset != c.uncompressed_offset ||
        o.compressed_offset != c.compressed_offset || o.uncompressed_size != c.uncompressed_size ||
        o.compressed_size != c.compressed_size || o.compressed != c.compressed ||
        (o.has_digest && c.has_digest && std::memcmp(o.digest, c.digest, sizeof o.digest) != 0)) {
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

}  // namespace nydus::cache
