// The per-open-file map the native READ fast path serves from (DESIGN.md, data path step 4).
//
// TypeScript builds it at OPEN from RAFS chunk metadata and installs it for the file handle; it is
// immutable afterwards and shared (shared_ptr) between concurrent READs. Each extent maps a range
// of the file to the bytes of one chunk:
//
//   file_offset, length     the uncompressed file range the chunk covers (length <= kMaxChunk)
//   blob_slot, chunk_index  which blob (BlobRegistry slot) and which bit of its chunk map
//   source_offset/size      where the chunk's bytes are in the blob's data file: the cache file
//                           (uncompressed layout: size == length) or a compressed source (the
//                           blob itself, or a cache kept compressed): kCompressed, size = the
//                           compressed size
//   flags                   kHole: zeros, no blob involved; kCompressed: as above
//
// File ranges not covered by any extent read as zeros (sparse files), and reads stop at
// file_size. The JS form is a Float64Array with kExtentStride numbers per extent in the order
// above (file_offset, length, blob_slot, chunk_index, source_offset, source_size, flags);
// Build() validates every number, since a bad table must fail the install, not a later READ.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nydus::readpath {

struct Extent {
  uint64_t file_offset;
  uint64_t source_offset;
  uint32_t length;
  uint32_t source_size;
  uint32_t blob_slot;
  uint32_t chunk_index;
  uint32_t flags;
};

inline constexpr uint32_t kExtentHole = 1;
inline constexpr uint32_t kExtentCompressed = 2;
inline constexpr uint32_t kExtentKnownFlags = kExtentHole | kExtentCompressed;
inline constexpr size_t kExtentStride = 7;
// RAFS chunks are at most 16 MiB (chunk_size is a power of two in [4 KiB, 16 MiB]).
inline constexpr uint32_t kMaxChunk = 16u << 20;
inline constexpr uint32_t kMaxBlobSlots = 4096;
// A compressed chunk is never much bigger than its data; anything beyond this bound is a bug.
constexpr uint64_t MaxCompressedSize(uint32_t length) {
  return static_cast<uint64_t>(length) + length / 255 + 65536;
}
// Doubles carry integers exactly up to 2^53; every offset in a table must stay below.
inline constexpr uint64_t kMaxSafeInteger = (1ull << 53) - 1;
inline constexpr size_t kMaxExtents = 1u << 24;

class ExtentTable {
 public:
  // Validates and builds a table. Returns nullptr and sets *error on the first bad value.
  static std::shared_ptr<const ExtentTable> FromValues(uint64_t file_size, const double* values,
                                                       size_t count, std::string* error);
  static std::shared_ptr<const ExtentTable> FromExtents(uint64_t file_size,
                                                        std::vector<Extent> extents,
                                                        std::string* error);

  uint64_t file_size() const { return file_size_; }
  std::span<const Extent> extents() const { return extents_; }
  // Index of the first extent that ends after `offset` (extents().size() when none).
  size_t FirstEndingAfter(uint64_t offset) const;

 private:
  uint64_t file_size_ = 0;
  std::vector<Extent> extents_;
};

}  // namespace nydus::readpath
