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

struct FopCounters::Slot {
  std::atomic<uint64_t> hits[kStatsFops] = {};
  std::atomic<uint64_t> errors[kStatsFops] = {};
  std::atomic<uint64_t> latency_us[kStatsFops] = {};
  std::atomic<uint64_t> data_read{0};
  std::atomic<uint64_t> block_count_read[kSizeBuckets] = {};
  std::atomic<uint64_t> read_latency_dist[kLatencyBuckets] = {};
};

struct FopCounters::Block {
  explicit Block(std::thread::id t) : thread(t) {}
  ~Block() {
    for (auto& s : slots) delete s.load(std::memory_order_relaxed);
  }
  const std::thread::id thread;
  // ORDERING: written once per slot by the owning thread (release) after the Slot is built,
  // read by Snapshot (acquire).
  std::atomic<Slot*> slots[kMaxCounterSlots] = {};
};

namespace {
struct ThreadCache {
  uint64_t owner = 0;
  void* block = nullptr;
};
thread_local ThreadCache t_cache;
}  // namespace

int StatsFopOf(uint32_t opcode) {
  switch (opcode) {
    case FUSE_GETATTR:
      return 0;
    case FUSE_READLINK:
      return 1;
    case FUSE_OPEN:
      return 2;
    case FUSE_RELEASE:
      return 3;
    case FUSE_READ:
      return 4;
    case FUSE_STATFS:
      return 5;
    case FUSE_GETXATTR:
      return 6;
    case FUSE_LISTXATTR:
      return 7;
    case FUSE_OPENDIR:
      return 8;
    case FUSE_LOOKUP:
      return 9;
    case FUSE_READDIR:
      return 10;
    case FUSE_READDIRPLUS:
      return 11;
    case FUSE_ACCESS:
      return 12;
    case FUSE_FORGET:
      return 13;
    case FUSE_BATCH_FORGET:
      return 14;
    default:
      return -1;
  }
}

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

FopCounters::FopCounters() : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)) {}
FopCounters::~FopCounters() = default;

uint32_t FopCounters::SlotOf(uint64_t nodeid) const {
  if (nodeid == 1) return root_slot_.load(std::memory_order_relaxed);
  const uint32_t shift = shift_.load(std::memory_order_relaxed);
  if (shift == 0 || shift >= 64) return 0;
  const uint64_t s = nodeid >> shift;
  return s < kMaxCounterSlots ? static_cast<uint32_t>(s) : kMaxCounterSlots - 1;
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
  const int f = StatsFopOf(opcode);
  if (f < 0) return;
  Slot* s = Mine(SlotOf(nodeid));
  Add(error ? s->errors[f] : s->hits[f], 1);
  if (latency_us != 0) Add(s->latency_us[f], latency_us);
}

void FopCounters::CountRead(uint64_t nodeid, bool error, uint64_t bytes, uint64_t latency_us) {
  Slot* s = Mine(SlotOf(nodeid));
  Add(s->block_count_read[ReadSizeBucket(error ? 0 : bytes)], 1);
  Add(s->read_latency_dist[LatencyBucket(latency_us)], 1);
  if (latency_us != 0) Add(s->latency_us[kStatsFopRead], latency_us);
  if (error) {
    Add(s->errors[kStatsFopRead], 1);
  } else {
    Add(s->hits[kStatsFopRead], 1);
    Add(s->data_read, bytes);
  }
}

void FopCounters::Snapshot(uint32_t slot, FopSnapshot* out) const {
  *out = FopSnapshot{};
  if (slot >= kMaxCounterSlots) return;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  std::lock_guard lock(mu_);
  for (const auto& b : blocks_) {
    const Slot* s = b->slots[slot].load(std::memory_order_acquire);
    if (s == nullptr) continue;
    for (size_t i = 0; i < kStatsFops; ++i) {
      out->hits[i] += ld(s->hits[i]);
      out->errors[i] += ld(s->errors[i]);
      out->latency_us[i] += ld(s->latency_us[i]);
    }
    out->data_read += ld(s->data_read);
    for (size_t i = 0; i < kSizeBuckets; ++i)
      out->block_count_read[i] += ld(s->block_count_read[i]);
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      out->read_latency_dist[i] += ld(s->read_latency_dist[i]);
    }
  }
}

}  // namespace nydus::fuse
