// The frontend side of vhost-user, part 3: the guest driver's half of one split virtqueue (what
// Linux's virtio_ring does), living in GuestRam. Builds chains as Linux 6.1 does for virtio-fs
// (reference §2.5: every multi-buffer request in an indirect table, single buffers direct),
// publishes them, collects used entries, and handles EVENT_IDX in both directions. Raw accessors
// let tests and the fault injector corrupt descriptors and indices on purpose.
//
// Not thread-safe: one thread drives a DriverQueue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "driver/frontend/guest_ram.h"
#include "vhost/virtq.h"

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

class DriverQueue {
 public:
  struct Buffer {
    uint64_t gpa;
    uint32_t len;
    bool writable;
  };

  // Allocates the rings (and one indirect table of max_indirect entries per descriptor) in ram.
  int Init(GuestRam* ram, uint16_t size, bool event_idx, uint32_t max_indirect, std::string* error);

  uint16_t size() const { return size_; }
  uint64_t desc_gpa() const { return desc_gpa_; }
  uint64_t avail_gpa() const { return avail_gpa_; }
  uint64_t used_gpa() const { return used_gpa_; }
  uint16_t free_count() const { return static_cast<uint16_t>(free_.size()); }
  uint16_t in_flight() const { return in_flight_; }

  // Adds a chain (readable buffers first). With `indirect` and more than one buffer it uses one
  // ring descriptor pointing to a table, like Linux's virtqueue_use_indirect. Returns the head or
  // -ENOSPC (ring full) / -E2BIG (more buffers than a table holds).
  int Add(const Buffer* bufs, size_t n, bool indirect);
  // Makes the chains added since the last call visible with one avail.idx store. Returns true if
  // the device asked to be kicked (EVENT_IDX avail_event / used.flags NO_NOTIFY).
  bool Publish();
  // Appends used entries seen since the last call and frees their descriptors.
  size_t Collect(std::vector<VirtqUsedElem>* out);
  // Asks for an interrupt on the next used entry; returns true if one is already there (so the
  // caller must not sleep on the call fd).
  bool ArmInterrupt();
  // Resets the driver state for a fresh device start on the same rings (guest reboot reuses the
  // memory but the new driver starts over at index 0): everything is zeroed.
  void Reinitialize();

  // --- raw access for tests and fault injection ---
  VirtqDesc* Desc(uint16_t i) const;
  VirtqDesc* IndirectTable(uint16_t head) const;
  uint64_t IndirectTableGpa(uint16_t head) const;
  // Descriptor indexes of the direct chain that starts at head (as we built it).
  std::vector<uint16_t> ChainOf(uint16_t head) const;
  // Puts any value into the next avail slot and bumps the shadow index (no accounting).
  void PushAvailRaw(uint16_t value);
  void SetAvailIdxRaw(uint16_t idx);
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t used_idx_seen() const { return last_used_; }

 private:
  uint16_t* AvailU16(size_t off) const;
  uint16_t* UsedU16(size_t off) const;

  GuestRam* ram_ = nullptr;
  uint16_t size_ = 0;
  bool event_idx_ = false;
  uint32_t max_indirect_ = 0;
  uint64_t desc_gpa_ = 0;
  uint64_t avail_gpa_ = 0;
  uint64_t used_gpa_ = 0;
  uint64_t indirect_gpa_ = 0;
  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  std::vector<uint16_t> free_;         // free descriptor indexes
  std::vector<uint16_t> shadow_next_;  // our own copy of next links (never trust the device)
  std::vector<uint16_t> chain_len_;    // descriptors per head, 0 when not in flight
  uint16_t avail_idx_ = 0;             // shadow of avail.idx (next slot to fill)
  uint16_t published_avail_ = 0;       // avail.idx at the last Publish
  uint16_t last_used_ = 0;             // used entries consumed
  uint16_t in_flight_ = 0;
};

}  // namespace nydus::driver::frontend
