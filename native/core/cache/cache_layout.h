// How a blob's chunks are stored in its cache file when that is not the plain layout (plain:
// uncompressed chunk data at the uncompressed offset, served by preadv straight into the reply).
// Upstream nydusd's two other layouts (storage/src/cache/filecache/mod.rs, cachedfile.rs):
//   kRaw        `cache.compressed`: `<blob_id>.blob.raw`, sized to the blob's compressed data,
//               holds each chunk exactly as the backend serves it (compressed or stored) at its
//               compressed offset. The chunk-ready map stays `<blob_id>.blob.data.chunk_map`.
//   kEncrypted  `enable_encryption`: `<blob_id>.blob.data`, each chunk's plaintext encrypted in
//               4096-byte units at its uncompressed offset (cache/cache_crypt.h).
// A hit is read, decoded (decompressed or decrypted) and, when verifying, checked against the
// chunk digest before a byte reaches the reader; anything short, undecodable or mismatching is
// -EIO, never data.
//
// The layout needs each chunk's place (offsets, sizes, digest) before it fills or serves the
// chunk (Learn): the fill learns the chunks it stores from its plan (cache/layout_store.h), and
// TypeScript gives the places of the chunks already cached when the blob is registered. A ready
// chunk whose place is not recorded counts as missing for the READ fast path, which hands it to
// TypeScript once (a cache another process filled).
//
// Threading: Learn runs on any thread (serialised by a mutex); Known, Entry and ReadChunk on any
// without a lock. An entry is published with a release store of its state, immutable afterwards.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/cache_crypt.h"
#include "codec/codec.h"
#include "codec/digest.h"

namespace nydus::cache {

enum class LayoutKind : uint32_t { kPlain = 0, kRaw = 1, kEncrypted = 2 };

struct LayoutChunk {
  uint64_t uncompressed_offset = 0;
  uint64_t compressed_offset = 0;
  uint32_t uncompressed_size = 0;
  uint32_t compressed_size = 0;
  bool compressed = false;
  bool has_digest = false;  // false: an all-zero digest in the image (cannot be verified)
  uint8_t digest[codec::kDigestLen] = {};
};

struct LayoutOptions {
  LayoutKind kind = LayoutKind::kRaw;
  codec::Algo algo = codec::Algo::kNone;
  codec::DigestAlgo digester = codec::DigestAlgo::kBlake3;
  // Check the digest of every chunk served (and filled) when the image has one.
  bool verify = false;
  bool convergent = false;
  uint8_t key[kCryptKeyLen] = {};
  // Bytes the cache file is meant to hold (kRaw: the compressed data size; kEncrypted: the
  // uncompressed size); chunks must lie inside (kEncrypted: their padded end may pass it).
  uint64_t data_size = 0;
};

inline constexpr uint32_t kMaxLayoutChunk = 16u << 20;

class ChunkLayout {
 public:
  ~ChunkLayout();
  ChunkLayout(const ChunkLayout&) = delete;
  ChunkLayout& operator=(const ChunkLayout&) = delete;

  // Null with *error set for an unusable option (kind, codec, key).
  static std::unique_ptr<ChunkLayout> Create(const LayoutOptions& opts, uint32_t chunk_count,
                                             std::string* error);

  const LayoutOptions& options() const { return opts_; }
  uint32_t chunk_count() const { return chunk_count_; }

  // Records where chunk `index` is. 0; -EINVAL (with *error) when the entry is out of range,
  // unaligned (kEncrypted needs 4096-aligned uncompressed offsets) or differs from the one
  // recorded before (a digest only when both have one). Recording the same entry again is a
  // no-op.
  int Learn(uint32_t index, const LayoutChunk& c, std::string* error);
  bool Known(uint32_t index) const;
  // The recorded entry (Known(index) must be true).
  const LayoutChunk& Entry(uint32_t index) const;

  // Reads chunk `index` from the cache file `fd` and decodes it into `out` (exactly the chunk's
  // uncompressed size). 0; -ENOENT not recorded; -EINVAL wrong `out_len`; -EIO short file,
  // undecodable, or digest mismatch; -errno of the read.
  int ReadChunk(int fd, uint32_t index, uint8_t* out, size_t out_len) const;

 private:
  ChunkLayout(const LayoutOptions& opts, uint32_t chunk_count);
  struct Slot {
    std::atomic<uint8_t> state{0};  // 0 unknown, 1 recorded (release-published)
    LayoutChunk c;
  };
  static constexpr uint32_t kPageShift = 10;
  static constexpr uint32_t kPageSize = 1u << kPageShift;
  Slot* SlotFor(uint32_t index, bool create);
  const Slot* SlotFor(uint32_t index) const;
  int Decode(const LayoutChunk& c, const uint8_t* stored, size_t stored_len, uint8_t* out) const;
  bool DigestMatches(const LayoutChunk& c, const uint8_t* data) const;

  const LayoutOptions opts_;
  const uint32_t chunk_count_;
  std::mutex learn_mu_;
  // Pages of slots, made on first Learn in their range (most blobs are read sparsely).
  std::unique_ptr<std::atomic<Slot*>[]> pages_;
};

}  // namespace nydus::cache
