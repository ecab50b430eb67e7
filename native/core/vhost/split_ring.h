// The device side of one split virtqueue in guest memory: reading the available ring, writing
// used elements, publishing the used index, and both directions of notification suppression
// (VIRTIO 1.2 §2.7.7-2.7.10; reference §2.2 with its barrier list).
//
// Threading: the avail side (Pending/HeadAt/last_avail) belongs to the queue's worker thread.
// The used side (AddUsed/Publish/NeedsNotify) is called with the queue lock held, because
// completions can arrive from any thread. Attach/Detach happen while the worker is stopped.
#pragma once

#include <cstdint>

#include "vhost/virtq.h"

namespace nydus::vhost {

class SplitRing {
 public:
  struct Layout {
    uint8_t* desc = nullptr;
    uint8_t* avail = nullptr;
    uint8_t* used = nullptr;
  };

  // Starts using the rings. `last_avail` is SET_VRING_BASE's value; the used index is re-read
  // from the ring (a rebooted guest restarts it at 0 while only the avail base is sent;
  // reference §2.6).
  void Attach(const Layout& layout, uint16_t size, uint16_t last_avail, bool event_idx);
  void Detach() { layout_ = Layout{}; }
  bool attached() const { return layout_.desc != nullptr; }

  uint16_t size() const { return size_; }
  const uint8_t* desc_table() const { return layout_.desc; }
  bool event_idx() const { return event_idx_; }

  // --- avail side (worker thread) ---
  // Entries the driver has made available since last_avail. False if avail.idx moved more than
  // the queue size ahead: the driver is broken (libvhost-user "Guest moved used index").
  bool Pending(uint16_t* count) const;
  // The head index stored in avail slot last_avail (not validated: may be >= size).
  uint16_t NextHead() const;
  void ConsumeOne() { ++last_avail_; }
  uint16_t last_avail() const { return last_avail_; }

  // Driver->device notification suppression. Around a drain the worker calls SuppressKicks, then
  // AllowKicks followed by a re-check of Pending (a kick raced with re-enabling is otherwise
  // lost; reference §2.2 step 5). AllowKicks contains the full barrier.
  void SuppressKicks();
  void AllowKicks();

  // --- used side (queue lock held) ---
  void AddUsed(uint32_t id, uint32_t len);
  // Stores used.idx once for everything added since the last publication. True if it moved.
  bool Publish();
  // Device->driver suppression after a publication: EVENT_IDX or avail.flags NO_INTERRUPT.
  bool NeedsNotify();
  uint16_t used_idx() const { return used_idx_; }

 private:
  uint16_t* avail_u16(size_t off) const;
  uint16_t* used_u16(size_t off) const;

  Layout layout_;
  uint16_t size_ = 0;
  bool event_idx_ = false;
  uint16_t last_avail_ = 0;      // worker thread
  uint16_t used_idx_ = 0;        // queue lock: next used slot, maybe not yet published
  uint16_t published_used_ = 0;  // queue lock: value last stored to used.idx
  uint16_t signalled_used_ = 0;  // queue lock: used idx at the last notify decision
  bool signalled_used_valid_ = false;
};

}  // namespace nydus::vhost
