// BLAKE3 (hash mode only, 32-byte output), written from the BLAKE3 specification.
//
// RAFS uses BLAKE3 as its default chunk and inode digester. Node's crypto has no BLAKE3, so the
// builder and digest validation call this through the addon. Portable scalar code: the chunk
// path is bounded by decompression and I/O, not by hashing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nydus::codec {

class Blake3 {
 public:
  static constexpr size_t kOutLen = 32;

  Blake3();
  void Update(const uint8_t* data, size_t len);
  // Writes the 32-byte digest. The hasher may keep receiving input afterwards (finalizing does
  // not consume state), matching the reference behaviour.
  void Finalize(uint8_t out[kOutLen]) const;

  static void Hash(const uint8_t* data, size_t len, uint8_t out[kOutLen]);

 private:
  static constexpr size_t kBlockLen = 64;
  static constexpr size_t kChunkLen = 1024;
  static constexpr int kMaxDepth = 54;  // 2^54 chunks of 1 KiB covers any 64-bit input length

  // State of the chunk currently being absorbed.
  uint32_t chunk_cv_[8];
  uint64_t chunk_counter_;
  uint8_t block_[kBlockLen];
  uint8_t block_len_;
  uint8_t blocks_compressed_;
  // Chaining values of completed subtrees, merged like a binary counter.
  uint32_t cv_stack_[kMaxDepth][8];
  uint8_t cv_stack_len_;

  void ResetChunk(uint64_t counter);
  size_t ChunkLen() const;
  void CompleteChunk();
};

}  // namespace nydus::codec
