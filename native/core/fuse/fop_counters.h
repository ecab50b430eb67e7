// Per-filesystem operation counters for the metrics API (upstream FsIoStats: fop_hits,
// fop_errors, fop_cumulative_latency_total, data_read, block_count_read, read_latency_dist),
// counted where each request completes, natively or with the handler's answer.
//
// A session may serve several filesystems (a pseudo root with mounts); each owns a slot of the
// node-id space: slot = nodeid >> shift (shift 0: one slot for everything), and node 1, the FUSE
// root, counts in the slot of the filesystem mounted at "/" (SetRootSlot).
//
// Counting must not slow the paths it counts (a cache-hit READ is ~1 us): every thread that
// completes requests increments a block of its own with plain relaxed loads and stores (no
// locked read-modify-write, no cache line shared with another writer), and a reader sums the
// blocks. Blocks are found through a one-entry thread-local cache and created on a thread's first
// count; a block outlives its thread (its counts stay in the sums) and is reused by a later
// thread with the same id, so blocks grow with the number of threads ever seen, not requests.
//
// Threading: Count*/Set* from any thread; Snapshot from any thread (values are monotonic per
// block, so a snapshot is a consistent lower bound, as upstream's relaxed atomics are).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace nydus::fuse {

// Upstream StatsFop order: Getattr Readlink Open Release Read Statfs Getxattr Listxattr Opendir
// Lookup Readdir Readdirplus Access Forget BatchForget.
inline constexpr size_t kStatsFops = 15;
inline constexpr size_t kStatsFopRead = 4;
inline constexpr size_t kSizeBuckets = 8;     // <1K 1K 4K 16K 64K 128K 512K 1M+
inline constexpr size_t kLatencyBuckets = 8;  // <=200us 1ms 20ms 50ms 500ms 1s 2s >2s
inline constexpr size_t kMaxCounterSlots = 256;

// The StatsFop index of a FUSE opcode, or -1 for opcodes upstream does not count.
int StatsFopOf(uint32_t opcode);
size_t ReadSizeBucket(uint64_t bytes);
size_t LatencyBucket(uint64_t micros);

struct FopSnapshot {
  uint64_t hits[kStatsFops] = {};
  uint64_t errors[kStatsFops] = {};
  uint64_t latency_us[kStatsFops] = {};
  uint64_t data_read = 0;
  uint64_t block_count_read[kSizeBuckets] = {};
  uint64_t read_latency_dist[kLatencyBuckets] = {};
};

class FopCounters {
 public:
  FopCounters();
  ~FopCounters();
  FopCounters(const FopCounters&) = delete;
  FopCounters& operator=(const FopCounters&) = delete;

  void SetSlotShift(uint32_t shift) { shift_.store(shift, std::memory_order_relaxed); }
  void SetRootSlot(uint32_t slot) { root_slot_.store(slot, std::memory_order_relaxed); }
  uint32_t SlotOf(uint64_t nodeid) const;

  // One request of `opcode` on `nodeid` completed (error: with an errno). READs go to CountRead.
  void Count(uint64_t nodeid, uint32_t opcode, bool error, uint64_t latency_us);
  // One READ completed with `bytes` of data (0 on error), as upstream: the size bucket counts
  // every READ, data_read and the hit only successful ones.
  void CountRead(uint64_t nodeid, bool error, uint64_t bytes, uint64_t latency_us);

  void Snapshot(uint32_t slot, FopSnapshot* out) const;

 private:
  struct Slot;
  struct Block;
  Slot* Mine(uint32_t slot);

  const uint64_t id_;  // process-unique: keys the thread-local block cache
  std::atomic<uint32_t> shift_{0};
  std::atomic<uint32_t> root_slot_{0};
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Block>> blocks_;  // guarded by mu_ (the blocks' counters are not)
};

}  // namespace nydus::fuse
