#include "fuse/fop_counters.h"

#include <linux/fuse.h>

namespace nydus::fuse {
namespace {

std::atomic<uint64_t> g_next_id{1};

// ORDERING: a counter has one writer (the block's thread), so load + store is an increment;
// relaxed is enough for readers, which only want some recent value.
inline void Add(std::atomic<uint64_t>& a, uint64_t v) {
  a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

}  // namespace

// One thread's counters of one slot; aligned so no two threads' counters share a cache line.
struct alignas(64) FopCounters::Slot {
  NYDUS_ABI_FOP_COUNTERS(NYDUS_ABI_STAT_ATOMIC)
  NYDUS_ABI_FOP_ARRAYS(NYDUS_ABI_STAT_ATOMIC_ARRAY)
};

struct FopCounters::Block {
  explicit Block(std::thread::id t) : thread(t) {}
  ~Block() {
    for (auto& s : slots) delete s.load(std::memory_order_relaxed);
  }
  const std::thread::id thread;
  // ORDERING: written once per slot by the owning thread (release) after the Slot is built,
  // read by Snapshot (acquire).
  std::atomic<Slot*> slots[kMaxFopSlots] = {};
};

namespace {
struct ThreadCache {
  uint64_t owner = 0;
  void* block = nullptr;
};
thread_local ThreadCache t_cache;
}  // namespace

size_t ReadSizeBucket(uint64_t bytes) {
  if (bytes < (1u << 10)) return 0;
  if (bytes < (4u << 10)) return 1;
  if (bytes < (16u << 10)) return 2;
  if (bytes < (64u << 10)) return 3;
  if (bytes < (128u << 10)) return 4;
  if (bytes < (512u << 10)) return 5;
  if (bytes < (1u << 20)) return 6;
  return 7;
}

size_t LatencyBucket(uint64_t us) {
  if (us <= 200) return 0;
  if (us <= 1000) return 1;
  if (us <= 20000) return 2;
  if (us <= 50000) return 3;
  if (us <= 500000) return 4;
  if (us <= 1000000) return 5;
  if (us <= 2000000) return 6;
  return 7;
}
static_assert(abi::kReadSizeBuckets == 8 && abi::kReadLatencyBuckets == 8,
              "the bucket functions above return 0..7");

FopCounters::FopCounters() : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)) {}
FopCounters::~FopCounters() = default;

uint32_t FopCounters::SlotOf(uint64_t nodeid) const {
  if (nodeid == 1) return root_slot_.load(std::memory_order_relaxed);
  const uint32_t shift = shift_.load(std::memory_order_relaxed);
  if (shift == 0 || shift >= 64) return 0;
  const uint64_t s = nodeid >> shift;
  return s < kMaxFopSlots ? static_cast<uint32_t>(s) : kMaxFopSlots - 1;
}

FopCounters::Slot* FopCounters::Mine(uint32_t slot) {
  Block* b = nullptr;
  if (t_cache.owner == id_) {
    b = static_cast<Block*>(t_cache.block);
  } else {
    const auto me = std::this_thread::get_id();
    std::lock_guard lock(mu_);
    for (auto& blk : blocks_) {
      if (blk->thread == me) {
        b = blk.get();
        break;
      }
    }
    if (b == nullptr) {
      blocks_.push_back(std::make_unique<Block>(me));
      b = blocks_.back().get();
    }
    t_cache.owner = id_;
    t_cache.block = b;
  }
  Slot* s = b->slots[slot].load(std::memory_order_relaxed);
  if (s == nullptr) {
    s = new Slot();
    b->slots[slot].store(s, std::memory_order_release);
  }
  return s;
}

void FopCounters::Count(uint64_t nodeid, uint32_t opcode, bool error, uint64_t latency_us) {
  if (opcode == FUSE_READ) {
    CountRead(nodeid, error, 0, latency_us);
    return;
  }
  const int f = FopIndexOf(opcode);
  if (f < 0) return;
  Slot* s = Mine(SlotOf(nodeid));
  Add(error ? s->errors[f] : s->hits[f], 1);
  if (latency_us != 0) Add(s->latency_us[f], latency_us);
}

void FopCounters::CountRead(uint64_t nodeid, bool error, uint64_t bytes, uint64_t latency_us) {
  constexpr int kRead = kFopIndexOf[FUSE_READ];
  Slot* s = Mine(SlotOf(nodeid));
  Add(s->block_count_read[ReadSizeBucket(error ? 0 : bytes)], 1);
  Add(s->read_latency_dist[LatencyBucket(latency_us)], 1);
  if (latency_us != 0) Add(s->latency_us[kRead], latency_us);
  if (error) {
    Add(s->errors[kRead], 1);
  } else {
    Add(s->hits[kRead], 1);
    Add(s->data_read, bytes);
  }
}

void FopCounters::Snapshot(uint32_t slot, FopSnapshot* out) const {
  *out = FopSnapshot{};
  if (slot >= kMaxFopSlots) return;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  std::lock_guard lock(mu_);
  for (const auto& b : blocks_) {
    const Slot* s = b->slots[slot].load(std::memory_order_acquire);
    if (s == nullptr) continue;
#define NYDUS_SUM_(name, js) out->name += ld(s->name);
#define NYDUS_SUM_ARRAY_(name, js, n) \
  for (size_t i = 0; i < abi::k##n; ++i) out->name[i] += ld(s->name[i]);
    NYDUS_ABI_FOP_COUNTERS(NYDUS_SUM_)
    NYDUS_ABI_FOP_ARRAYS(NYDUS_SUM_ARRAY_)
#undef NYDUS_SUM_ARRAY_
#undef NYDUS_SUM_
  }
}

}  // namespace nydus::fuse
