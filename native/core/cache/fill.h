// Cache fill off the JavaScript thread: the chunks of one fetched range (compressed bytes as the
// backend returned them) are decoded into runs of adjacent uncompressed data and each run is
// written to the blob cache file with pwrite. The caller (storage/blob-cache.ts) sets a chunk's
// ready bit only after this reports the chunk written, which keeps the cache invariant: no bit
// over data that was not fully written or did not decode.
//
// Every number in a plan comes from image metadata (untrusted): ValidatePlan checks each chunk
// against the source buffer and the limits before anything is decoded or written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codec/codec.h"

namespace nydus::cache {

struct FillChunk {
  uint64_t src_offset = 0;   // into the fetched bytes
  uint32_t src_size = 0;     // compressed size (== size when not compressed)
  uint64_t file_offset = 0;  // uncompressed offset in the blob = offset in the cache file
  uint32_t size = 0;         // uncompressed size
  bool compressed = false;
};

// A chunk's uncompressed size may not exceed this (RAFS chunks are at most 16 MiB).
inline constexpr uint32_t kMaxFillChunk = 16u << 20;
// Chunks per plan (a merged fetch is at most 16 MiB of data).
inline constexpr size_t kMaxFillChunks = 65536;

// Empty when every chunk fits `src_len` and the limits; otherwise what is wrong and where.
std::string ValidatePlan(const std::vector<FillChunk>& chunks, size_t src_len);

// Decodes and writes every chunk; status[i] is 0 (written), -EBADMSG (did not decode to exactly
// `size` bytes) or -errno of the failed write. Chunks adjacent in the file (in plan order) are
// written with one pwrite per run of good chunks. The plan must have passed ValidatePlan.
std::vector<int> DecodeAndWrite(codec::Algo algo, const uint8_t* src, size_t src_len,
                                const std::vector<FillChunk>& chunks, int fd);

}  // namespace nydus::cache
