// The persistent chunk-ready bitmap of a blob cache (`<blob_id>.blob.data.chunk_map`).
//
// Layout, shared with upstream nydusd so caches are interchangeable (rafs-format.md §3.1):
//   [0, 4096)  header: u32 magic 0x424D4150 ("BMAP"), u32 version = 1, u32 magic2 0x434D4150,
//              u32 all_ready (0x4D4D4150 once every chunk is ready), zero reserved bytes
//   [4096, 4096 + ceil(n/8))  one bit per chunk index, MSB first: chunk i is byte i>>3,
//              mask 1 << (7 - (i & 7)).
// The file is mmapped MAP_SHARED and bits are set with atomic OR, so several processes and our
// own worker threads can share it. A bit is set only after the chunk's bytes were written to the
// data file (the caller's ordering), so a crash never leaves a ready bit over missing data.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "abi/js_abi.h"

namespace nydus::cache {

class ChunkMap {
 public:
  static constexpr size_t kHeaderSize = abi::kChunkMapHeaderSize;
  static constexpr uint32_t kMagic = 0x424D4150;
  static constexpr uint32_t kMagic2 = 0x434D4150;
  static constexpr uint32_t kAllReady = 0x4D4D4150;

  ChunkMap() = default;
  ~ChunkMap();
  ChunkMap(const ChunkMap&) = delete;
  ChunkMap& operator=(const ChunkMap&) = delete;

  // Opens or creates the map for `chunk_count` chunks. Returns 0 or -errno; on failure `error`
  // says what is wrong with the file (size mismatch, bad magic) in one line.
  int Open(const std::string& path, uint32_t chunk_count, std::string* error);
  void Close();

  uint32_t chunk_count() const { return chunk_count_; }
  bool IsReady(uint32_t index) const;
  // True when every index in [first, first+count) is ready (false for out-of-range indexes).
  bool RangeReady(uint32_t first, uint32_t count) const;
  // Marks a chunk ready. Returns true when this call flipped the bit. Out-of-range: false.
  bool SetReady(uint32_t index);
  uint32_t ReadyCount() const;
  bool AllReady() const;

  static size_t FileSize(uint32_t chunk_count) {
    return kHeaderSize + (static_cast<size_t>(chunk_count) + 7) / 8;
  }

 private:
  uint8_t* map_ = nullptr;  // mmapped file; immutable after Open until Close
  size_t map_len_ = 0;
  uint32_t chunk_count_ = 0;
  // ORDERING: relaxed counter; exactness matters only for the all_ready header flag, which is
  // re-derived from the bitmap at the next Open anyway.
  std::atomic<uint32_t> not_ready_{0};

  std::atomic<uint8_t>* Byte(uint32_t index) const;
  void MarkAllReady();
};

}  // namespace nydus::cache
