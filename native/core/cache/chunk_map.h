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
//
// Sharing between daemons (one work_dir, several nydusd): every process holds a flock on the
// map file while it has the map open. The first opener gets it exclusively and is the only one
// that may repair the map (a damaged header or size is rebuilt empty, bits over data that is not
// in the data file are cleared by the caller) before it downgrades to shared (Share()). Later
// openers take it shared and never repair; a damaged map they find is an error for them.
// The file's blocks are allocated at open, so setting a bit through the mapping can never fault
// (SIGBUS) on a full filesystem.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "abi/js_abi.h"
#include "cache/cache_layout.h"
#include "cache/spill.h"

namespace nydus::cache {

// Chunks a fill has decoded (and verified) but not stored yet: their bytes back to back in the
// fill's memory, valid only while ReadyListener::OnDecoded runs. Every number here comes from
// the fill plan, which ValidatePlan checked; Find() checks a reader's extent against it.
// A fill offers a stretch as it decodes it (RunFill): each offer holds every chunk of the stretch
// decoded so far, and Fresh() the ones decoded since the previous offer, whose parked READs are
// looked up (a READ that parked on an older chunk of the stretch in between is passed over; it
// completes when the stretch is stored).
struct DecodedRun {
  std::span<const uint32_t> indices;  // chunk indices, in blob offset order
  std::span<const uint64_t> offsets;  // uncompressed blob offset of each; adjacent, ascending
  uint64_t end = 0;                   // blob offset one past the last chunk
  const uint8_t* bytes = nullptr;     // the bytes of [offsets[0], end)
  size_t fresh_from = 0;              // indices[fresh_from..] are new in this offer

  std::span<const uint32_t> Fresh() const {
    return fresh_from < indices.size() ? indices.subspan(fresh_from) : std::span<const uint32_t>{};
  }

  // The bytes of chunk `index` at blob offsets [from, from + len) when they lie in that chunk
  // of this run; null otherwise.
  const uint8_t* Find(uint32_t index, uint64_t from, uint64_t len) const;
  bool Contains(uint32_t index) const;
};

// Told which chunks just became readable (cache file or spill): a FUSE session wakes the READs
// parked on them. Called on the fill thread that published the chunks, after their bits.
class ReadyListener {
 public:
  virtual ~ReadyListener() = default;
  virtual void OnReady(std::span<const uint32_t> indices) = 0;
  // Called on the fill thread before the run is stored (its bits are not set): READs parked
  // on these chunks may be answered from `run` now, so the cache write is not on their path.
  virtual void OnDecoded(const DecodedRun& /*run*/) {}
};

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

  struct OpenOptions {
    // Take the lock exclusively when no one else has the map, and then rebuild a damaged map
    // (wrong size, bad magic) as an empty one instead of failing. Without it the lock is shared.
    bool repair = false;
  };
  struct OpenInfo {
    bool exclusive = false;  // no other process has the map open: the caller may repair
    std::string repaired;    // non-empty: what was wrong with the map that was rebuilt
  };

  // Opens or creates the map for `chunk_count` chunks. Returns 0 or -errno; on failure `error`
  // says what is wrong with the file (size mismatch, bad magic, in use) in one line.
  int Open(const std::string& path, uint32_t chunk_count, std::string* error);
  int Open(const std::string& path, uint32_t chunk_count, const OpenOptions& opts, OpenInfo* info,
           std::string* error);
  void Close();
  // Exclusive -> shared lock, once the caller's repairs are done. Returns 0 or -errno.
  int Share();

  uint32_t chunk_count() const { return chunk_count_; }
  bool IsReady(uint32_t index) const;
  // True when every index in [first, first+count) is ready (false for out-of-range indexes).
  bool RangeReady(uint32_t first, uint32_t count) const;
  // Marks a chunk ready. Returns true when this call flipped the bit. Out-of-range: false.
  bool SetReady(uint32_t index);
  // Clears a bit (repair of an exclusively opened map only). Returns true when it was set.
  bool ClearReady(uint32_t index);
  uint32_t ReadyCount() const;
  bool AllReady() const;

  // The in-memory store of chunks the cache file could not take; null until first needed.
  Spill* spill() const { return spill_.load(std::memory_order_acquire); }
  Spill* EnsureSpill(std::string* error);

  // How the cache file stores chunks when that is not the plain layout (cache/cache_layout.h);
  // null for plain. Attached once, before the map is handed to readers (registration orders it).
  ChunkLayout* layout() const { return layout_.load(std::memory_order_acquire); }
  // False (and the layout dropped) when one is attached already.
  bool AttachLayout(std::unique_ptr<ChunkLayout> layout);

  // Listeners of NotifyReady (sessions serving from this map). Any thread.
  void AddListener(std::shared_ptr<ReadyListener> l);
  void RemoveListener(const ReadyListener* l);
  // Tells every listener that `indices` are readable now (the caller set their bits first).
  void NotifyReady(std::span<const uint32_t> indices);
  // Offers every listener a decoded run before it is stored (ReadyListener::OnDecoded).
  void NotifyDecoded(const DecodedRun& run);

  static size_t FileSize(uint32_t chunk_count) {
    return kHeaderSize + (static_cast<size_t>(chunk_count) + 7) / 8;
  }

 private:
  uint8_t* map_ = nullptr;  // mmapped file; immutable after Open until Close
  int fd_ = -1;             // kept open: it holds the flock
  size_t map_len_ = 0;
  uint32_t chunk_count_ = 0;
  // ORDERING: relaxed counter; exactness matters only for the all_ready header flag, which is
  // re-derived from the bitmap at the next Open anyway.
  std::atomic<uint32_t> not_ready_{0};

  std::mutex spill_mu_;                 // serialises EnsureSpill
  std::unique_ptr<Spill> spill_owner_;  // guarded by spill_mu_; lives as long as the map
  std::atomic<Spill*> spill_{nullptr};
  std::unique_ptr<ChunkLayout> layout_owner_;  // guarded by spill_mu_
  std::atomic<ChunkLayout*> layout_{nullptr};
  std::mutex listeners_mu_;
  std::vector<std::shared_ptr<ReadyListener>> listeners_;  // guarded by listeners_mu_

  std::atomic<uint8_t>* Byte(uint32_t index) const;
  void MarkAllReady();
  int Lock(const std::string& path, bool repair, OpenInfo* info, std::string* error);
};

}  // namespace nydus::cache
