#include "fuse/pending.h"

namespace nydus::fuse {

Pending* PendingTable::Acquire() {
  std::lock_guard lock(mu_);
  size_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    if (used_slots_ >= max_slots_ || used_slots_ >= (size_t{1} << kIndexBits)) return nullptr;
    if (used_slots_ == blocks_.size() * kBlock) {
      blocks_.emplace_back(new Pending[kBlock]);
      for (size_t i = 0; i < kBlock; ++i) {
        blocks_.back()[i].index = static_cast<uint32_t>(used_slots_ + i);
      }
    }
    index = used_slots_++;
  }
  Pending* p = &blocks_[index / kBlock][index % kBlock];
  p->state = 2;
  p->req = nullptr;
  p->table.reset();
  p->missing.clear();
  p->name_len = 0;
  return p;
}

Pending* PendingTable::Find(uint64_t token) {
  const size_t index = static_cast<size_t>(token & ((uint64_t{1} << kIndexBits) - 1));
  const uint64_t generation = token >> kIndexBits;
  if (index >= used_slots_) return nullptr;
  Pending* p = &blocks_[index / kBlock][index % kBlock];
  return p->generation == generation ? p : nullptr;
}

uint64_t PendingTable::Publish(Pending* p) {
  std::lock_guard lock(mu_);
  p->state = 1;
  ++live_;
  return TokenOf(p->index, p->generation);
}

Pending* PendingTable::Claim(uint64_t token) {
  std::lock_guard lock(mu_);
  Pending* p = Find(token);
  if (p == nullptr || p->state != 1) return nullptr;
  p->state = 2;
  --live_;
  return p;
}

Pending* PendingTable::Claimed(uint64_t token) {
  std::lock_guard lock(mu_);
  Pending* p = Find(token);
  return p != nullptr && p->state == 2 ? p : nullptr;
}

void PendingTable::Unclaim(Pending* p) {
  std::lock_guard lock(mu_);
  p->state = 1;
  ++live_;
}

void PendingTable::Release(Pending* p) {
  std::lock_guard lock(mu_);
  p->state = 0;
  p->req = nullptr;
  p->table.reset();
  p->generation = (p->generation + 1) & kGenerationMask;
  if (p->generation == 0) p->generation = 1;
  free_.push_back(p->index);
}

size_t PendingTable::live() const {
  std::lock_guard lock(mu_);
  return live_;
}

}  // namespace nydus::fuse
