// The per-open-file map the native READ fast path serves from (DESIGN.md, data path step 4).
//
// TypeScript builds it at OPEN from RAFS chunk metadata and installs it for the file handle; it is
// immutable afterwards and shared (shared_ptr) between concurrent READs. Each extent maps a range
// of the file to the bytes of one chunk:
//
//   file_offset, length     the file range the chunk covers (length <= abi::kMaxChunk)
//   blob_slot, chunk_index  which blob (BlobRegistry slot) and which bit of its chunk map
//   source_offset/size      where the chunk's bytes are in the blob's data file (the cache
//                           file, uncompressed: size == length)
//   flags                   kExtentHole: zeros, no blob involved
// (In a compressed or encrypted cache file the offsets are still the uncompressed ones: the
// blob's ChunkLayout, cache/cache_layout.h, says where the chunk is stored and decodes it.)
//
// File ranges not covered by any extent read as zeros (sparse files), and reads stop at
// file_size. The JS form is a Float64Array of abi::ExtentRecord records (abi/js_abi.h);
// FromValues() validates every number, since a bad table must fail the install, not a later
// READ.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "abi/js_abi.h"

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

inline constexpr uint32_t kExtentHole = abi::kExtentHole;
inline constexpr uint32_t kExtentKnownFlags = kExtentHole;
// RAFS chunks are at most 16 MiB (chunk_size is a power of two in [4 KiB, 16 MiB]).
inline constexpr uint32_t kMaxChunk = abi::kMaxChunk;
inline constexpr uint32_t kMaxBlobSlots = abi::kMaxBlobSlots;
// Doubles carry integers exactly up to 2^53; every offset in a table must stay below.
inline constexpr uint64_t kMaxSafeInteger = (1ull << 53) - 1;
inline constexpr size_t kMaxExtents = abi::kMaxExtents;

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
