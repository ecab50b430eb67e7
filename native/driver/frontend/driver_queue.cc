#include "driver/frontend/driver_queue.h"

#include <errno.h>
#include <string.h>

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

uint16_t* DriverQueue::AvailU16(size_t off) const {
  // SAFETY: avail_ points at AvailRingBytes(size_) bytes of our guest RAM, 2-byte aligned.
  return reinterpret_cast<uint16_t*>(avail_ + off);
}

uint16_t* DriverQueue::UsedU16(size_t off) const {
  // SAFETY: used_ points at UsedRingBytes(size_) bytes of our guest RAM, 4-byte aligned.
  return reinterpret_cast<uint16_t*>(used_ + off);
}

int DriverQueue::Init(GuestRam* ram, uint16_t size, bool event_idx, uint32_t max_indirect,
                      std::string* error) {
  if (!IsPowerOfTwo(size)) {
    *error = "queue size must be a power of two";
    return -EINVAL;
  }
  ram_ = ram;
  size_ = size;
  event_idx_ = event_idx;
  max_indirect_ = max_indirect;
  // Linux's vring_init layout: descriptors, then avail, then used aligned up (here to 64,
  // matching the observed used = avail + 0x840 for 1024 entries).
  desc_gpa_ = ram->Alloc(DescTableBytes(size), 4096);
  avail_gpa_ = ram->Alloc(AvailRingBytes(size), 2);
  used_gpa_ = ram->Alloc(UsedRingBytes(size), 64);
  indirect_gpa_ = ram->Alloc(uint64_t{size} * max_indirect * sizeof(VirtqDesc), 4096);
  if (desc_gpa_ == 0 || avail_gpa_ == 0 || used_gpa_ == 0 || indirect_gpa_ == 0) {
    *error = "guest RAM too small for the rings";
    return -ENOMEM;
  }
  desc_ = ram->Host(desc_gpa_, DescTableBytes(size));
  avail_ = ram->Host(avail_gpa_, AvailRingBytes(size));
  used_ = ram->Host(used_gpa_, UsedRingBytes(size));
  Reinitialize();
  return 0;
}

void DriverQueue::Reinitialize() {
  memset(desc_, 0, DescTableBytes(size_));
  memset(avail_, 0, AvailRingBytes(size_));
  memset(used_, 0, UsedRingBytes(size_));
  free_.clear();
  for (int i = size_ - 1; i >= 0; --i) free_.push_back(static_cast<uint16_t>(i));
  shadow_next_.assign(size_, 0);
  chain_len_.assign(size_, 0);
  avail_idx_ = published_avail_ = last_used_ = 0;
  in_flight_ = 0;
}

VirtqDesc* DriverQueue::Desc(uint16_t i) const {
  // SAFETY: i % size_ indexes the descriptor table; VirtqDesc is 16-byte aligned there.
  return reinterpret_cast<VirtqDesc*>(desc_) + (i % size_);
}

uint64_t DriverQueue::IndirectTableGpa(uint16_t head) const {
  return indirect_gpa_ + static_cast<uint64_t>(head % size_) * max_indirect_ * sizeof(VirtqDesc);
}

VirtqDesc* DriverQueue::IndirectTable(uint16_t head) const {
  // SAFETY: each head owns max_indirect_ descriptors of the indirect area allocated in Init.
  return reinterpret_cast<VirtqDesc*>(
      ram_->Host(IndirectTableGpa(head), uint64_t{max_indirect_} * sizeof(VirtqDesc)));
}

std::vector<uint16_t> DriverQueue::ChainOf(uint16_t head) const {
  std::vector<uint16_t> out;
  uint16_t i = head;
  for (uint16_t k = 0; k < chain_len_[head % size_]; ++k) {
    out.push_back(i);
    i = shadow_next_[i];
  }
  return out;
}

int DriverQueue::Add(const Buffer* bufs, size_t n, bool indirect) {
  if (n == 0) return -EINVAL;
  const bool use_table = indirect && n > 1;
  const size_t ring_descs = use_table ? 1 : n;
  if (free_.size() < ring_descs) return -ENOSPC;
  if (use_table && n > max_indirect_) return -E2BIG;
  uint16_t head = free_.back();
  if (use_table) {
    free_.pop_back();
    VirtqDesc* table = IndirectTable(head);
    for (size_t i = 0; i < n; ++i) {
      table[i] = VirtqDesc{bufs[i].gpa, bufs[i].len,
                           static_cast<uint16_t>((bufs[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
                                                 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
                           static_cast<uint16_t>(i + 1 < n ? i + 1 : 0)};
    }
    *Desc(head) = VirtqDesc{IndirectTableGpa(head), static_cast<uint32_t>(n * sizeof(VirtqDesc)),
                            VIRTQ_DESC_F_INDIRECT, 0};
    chain_len_[head] = 1;
  } else {
    uint16_t prev = 0;
    for (size_t i = 0; i < n; ++i) {
      uint16_t d = free_.back();
      free_.pop_back();
      if (i > 0) {
        shadow_next_[prev] = d;
        Desc(prev)->next = d;
      }
      *Desc(d) = VirtqDesc{bufs[i].gpa, bufs[i].len,
                           static_cast<uint16_t>((bufs[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
                                                 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
                           0};
      prev = d;
    }
    chain_len_[head] = static_cast<uint16_t>(n);
  }
  // ORDERING: the slot is published by the release store of avail.idx in Publish.
  __atomic_store_n(AvailU16(kAvailRingOff + 2 * static_cast<size_t>(avail_idx_ % size_)), head,
                   __ATOMIC_RELAXED);
  ++avail_idx_;
  ++in_flight_;
  return head;
}

void DriverQueue::PushAvailRaw(uint16_t value) {
  // ORDERING: as in Add: published by Publish's release store.
  __atomic_store_n(AvailU16(kAvailRingOff + 2 * static_cast<size_t>(avail_idx_ % size_)), value,
                   __ATOMIC_RELAXED);
  ++avail_idx_;
}

void DriverQueue::SetAvailIdxRaw(uint16_t idx) { avail_idx_ = idx; }

bool DriverQueue::Publish() {
  uint16_t old = published_avail_;
  // ORDERING: release pairs with the device's acquire load of avail.idx: descriptors, tables and
  // ring slots written before are visible once the new index is.
  __atomic_store_n(AvailU16(kAvailIdxOff), avail_idx_, __ATOMIC_RELEASE);
  published_avail_ = avail_idx_;
  // ORDERING: full barrier between publishing avail.idx and reading the device's suppression
  // state (Linux virtqueue_kick_prepare_split: virtio_mb).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (event_idx_) {
    uint16_t avail_event =
        __atomic_load_n(UsedU16(kUsedRingOff + 8 * size_t{size_}), __ATOMIC_RELAXED);
    return VringNeedEvent(avail_event, avail_idx_, old);
  }
  return (__atomic_load_n(UsedU16(kUsedFlagsOff), __ATOMIC_RELAXED) & VIRTQ_USED_F_NO_NOTIFY) == 0;
}

size_t DriverQueue::Collect(std::vector<VirtqUsedElem>* out) {
  // ORDERING: acquire pairs with the device's release store of used.idx: the elements and the
  // reply bytes written into our buffers are visible after it.
  uint16_t used = __atomic_load_n(UsedU16(kUsedIdxOff), __ATOMIC_ACQUIRE);
  size_t n = 0;
  while (last_used_ != used) {
    VirtqUsedElem e;
    memcpy(&e, used_ + kUsedRingOff + 8 * static_cast<size_t>(last_used_ % size_), sizeof(e));
    ++last_used_;
    ++n;
    out->push_back(e);
    if (e.id >= size_ || chain_len_[e.id] == 0) continue;  // bogus id: the caller checks ids
    uint16_t d = static_cast<uint16_t>(e.id);
    for (uint16_t k = 0; k < chain_len_[e.id]; ++k) {
      free_.push_back(d);
      d = shadow_next_[d];
    }
    chain_len_[e.id] = 0;
    if (in_flight_ > 0) --in_flight_;
  }
  return n;
}

bool DriverQueue::ArmInterrupt() {
  // ORDERING: relaxed stores of the suppression state; the fence below orders them before the
  // re-read of used.idx.
  if (event_idx_) {
    __atomic_store_n(AvailU16(kAvailRingOff + 2 * size_t{size_}), last_used_, __ATOMIC_RELAXED);
  } else {
    __atomic_store_n(AvailU16(kAvailFlagsOff), uint16_t{0}, __ATOMIC_RELAXED);
  }
  // ORDERING: full barrier between re-arming and re-reading used.idx (Linux
  // virtqueue_enable_cb: virtio_mb), else a completion racing with the re-arm is missed.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return __atomic_load_n(UsedU16(kUsedIdxOff), __ATOMIC_ACQUIRE) != last_used_;
}

}  // namespace nydus::driver::frontend
