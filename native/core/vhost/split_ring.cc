#include "vhost/split_ring.h"

#include <string.h>

namespace nydus::vhost {

uint16_t* SplitRing::avail_u16(size_t off) const {
  // SAFETY: the avail ring was bounds-checked for AvailRingBytes(size_) and 2-byte alignment at
  // attach time; off < AvailRingBytes(size_) for every caller.
  return reinterpret_cast<uint16_t*>(layout_.avail + off);
}

uint16_t* SplitRing::used_u16(size_t off) const {
  // SAFETY: as avail_u16, for UsedRingBytes(size_) and 4-byte alignment.
  return reinterpret_cast<uint16_t*>(layout_.used + off);
}

void SplitRing::Attach(const Layout& layout, uint16_t size, uint16_t last_avail, bool event_idx) {
  layout_ = layout;
  size_ = size;
  event_idx_ = event_idx;
  last_avail_ = last_avail;
  // ORDERING: the worker is not running yet; relaxed suffices for a value only we write later.
  used_idx_ = __atomic_load_n(used_u16(kUsedIdxOff), __ATOMIC_RELAXED);
  published_used_ = used_idx_;
  signalled_used_valid_ = false;
}

bool SplitRing::Pending(uint16_t* count) const {
  // ORDERING: acquire pairs with the driver's release (virtio_wmb) before it bumps avail.idx,
  // so the ring slots and descriptors it published are visible before we read them.
  uint16_t idx = __atomic_load_n(avail_u16(kAvailIdxOff), __ATOMIC_ACQUIRE);
  uint16_t n = static_cast<uint16_t>(idx - last_avail_);
  if (n > size_) return false;
  *count = n;
  return true;
}

uint16_t SplitRing::NextHead() const {
  // ORDERING: covered by the acquire load of avail.idx in Pending.
  return __atomic_load_n(avail_u16(kAvailRingOff + 2 * static_cast<size_t>(last_avail_ % size_)),
                         __ATOMIC_RELAXED);
}

void SplitRing::SuppressKicks() {
  if (event_idx_) return;  // with EVENT_IDX, avail_event is only moved forward in AllowKicks
  // ORDERING: a hint to the driver; a late-seen flag costs one spurious kick at most.
  __atomic_store_n(used_u16(kUsedFlagsOff), VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

void SplitRing::AllowKicks() {
  if (event_idx_) {
    // avail_event sits after the used ring's elements: ask for a kick on the next new entry.
    __atomic_store_n(used_u16(kUsedRingOff + 8 * size_t{size_}), last_avail_, __ATOMIC_RELAXED);
  } else {
    __atomic_store_n(used_u16(kUsedFlagsOff), uint16_t{0}, __ATOMIC_RELAXED);
  }
  // ORDERING: full barrier between re-enabling kicks and re-reading avail.idx (the caller's
  // Pending). Pairs with the driver's barrier between writing avail.idx and reading our
  // flags/avail_event; without it both sides can miss each other and the kick is lost.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void SplitRing::AddUsed(uint32_t id, uint32_t len) {
  VirtqUsedElem e{id, len};
  // SAFETY: slot < size_, inside the used ring bounds-checked at attach. Plain stores: the
  // driver reads elements only after seeing used.idx, which Publish stores with release.
  memcpy(
      layout_.used + kUsedRingOff + sizeof(VirtqUsedElem) * static_cast<size_t>(used_idx_ % size_),
      &e, sizeof(e));
  ++used_idx_;
}

bool SplitRing::Publish() {
  if (used_idx_ == published_used_) return false;
  // ORDERING: release makes every element written by AddUsed (and the reply bytes written into
  // the chains before Complete) visible before the driver can observe the new index; one store
  // per drain (style rule 11, reference §2.2 step 3).
  __atomic_store_n(used_u16(kUsedIdxOff), used_idx_, __ATOMIC_RELEASE);
  published_used_ = used_idx_;
  return true;
}

bool SplitRing::NeedsNotify() {
  // ORDERING: full barrier between publishing used.idx and reading the driver's suppression
  // state (used_event / avail.flags); pairs with the driver's barrier after it updates them.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (!event_idx_) {
    return (__atomic_load_n(avail_u16(kAvailFlagsOff), __ATOMIC_RELAXED) &
            VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
  }
  uint16_t old_idx = signalled_used_;
  bool valid = signalled_used_valid_;
  signalled_used_ = published_used_;
  signalled_used_valid_ = true;
  if (!valid) return true;
  uint16_t used_event =
      __atomic_load_n(avail_u16(kAvailRingOff + 2 * size_t{size_}), __ATOMIC_RELAXED);
  return VringNeedEvent(used_event, published_used_, old_idx);
}

}  // namespace nydus::vhost
