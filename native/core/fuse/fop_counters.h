// Per-filesystem operation counters for the metrics API (upstream FsIoStats: fop_hits,
// fop_errors, fop_cumulative_latency_total, data_read, block_count_read, read_latency_dist),
// counted where each request completes, natively or with the handler's answer. The operations,
// counters and bucket counts are defined once, in abi/js_abi.h (NYDUS_ABI_FOP_*).
//
// A session may serve several filesystems (a pseudo root with mounts); each owns a slot of the
// node-id space: slot = nodeid >> shift (shift 0: one slot for everything), and node 1, the FUSE
// root, counts in the slot of the filesystem mounted at "/" (SetRootSlot).
//
// Counting must not slow the paths it counts (a cache-hit READ or LOOKUP is ~1 us): every thread
// that completes requests increments a block of its own with plain relaxed loads and stores (no
// locked read-modify-write; each thread's counters sit on cache lines of their own), and a reader
// sums the blocks. Blocks are found through a one-entry thread-local cache and created on a
// thread's first count; a block outlives its thread (its counts stay in the sums) and is reused
// by a later thread with the same id, so blocks grow with the number of threads ever seen, not
// with requests.
//
// Threading: Count*/Set* from any thread; Snapshot from any thread (values are monotonic per
// block, so a snapshot is a consistent lower bound, as upstream's relaxed atomics are).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "abi/js_abi.h"

namespace nydus::fuse {

inline constexpr size_t kFopKinds = abi::kFopKinds;
inline constexpr uint32_t kMaxFopSlots = abi::kMaxFopSlots;

// The counter index of each FUSE opcode (-1: not counted), made from NYDUS_ABI_FOP_KINDS.
inline constexpr auto kFopIndexOf = [] {
  std::array<int8_t, abi::kOpcodeTableSize> t{};
  t.fill(-1);
  for (size_t i = 0; i < kFopKinds; ++i) t[abi::kFopOpcodes[i]] = static_cast<int8_t>(i);
  return t;
}();

// The counter index of `opcode`, or -1 for opcodes upstream does not count.
inline int FopIndexOf(uint32_t opcode) {
  return opcode < kFopIndexOf.size() ? kFopIndexOf[opcode] : -1;
}
// Upstream's READ size buckets (<1K 1K 4K 16K 64K 128K 512K 1M+) and latency buckets
// (<=200us 1ms 20ms 50ms 500ms 1s 2s >2s).
size_t ReadSizeBucket(uint64_t bytes);
size_t LatencyBucket(uint64_t micros);

// Steady-clock microseconds (request latency).
inline uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

struct FopSnapshot {
  NYDUS_ABI_FOP_COUNTERS(NYDUS_ABI_STAT_FIELD)
  NYDUS_ABI_FOP_ARRAYS(NYDUS_ABI_STAT_ARRAY)
};

class FopCounters {
 public:
  FopCounters();
  ~FopCounters();
  FopCounters(const FopCounters&) = delete;
  FopCounters& operator=(const FopCounters&) = delete;

  void SetSlotShift(uint32_t shift) { shift_.store(shift, std::memory_order_relaxed); }
  void SetRootSlot(uint32_t slot) { root_slot_.store(slot, std::memory_order_relaxed); }
  uint32_t slot_shift() const { return shift_.load(std::memory_order_relaxed); }
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

  // Read on every count, written only by Set*: a cache line no counter or lock shares.
  alignas(64) const uint64_t id_;  // process-unique: keys the thread-local block cache
  std::atomic<uint32_t> shift_{0};
  std::atomic<uint32_t> root_slot_{0};
  alignas(64) mutable std::mutex mu_;
  std::vector<std::unique_ptr<Block>> blocks_;  // guarded by mu_ (the blocks' counters are not)
};

}  // namespace nydus::fuse
