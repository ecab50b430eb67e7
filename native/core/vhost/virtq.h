// Split virtqueue layout (VIRTIO 1.2 §2.7; reference §2.1): descriptor table, available ring and
// used ring, all little-endian in guest memory. x86-64 and aarch64 hosts are little-endian, so
// fields are used as-is (static_assert below).
#pragma once

#include <cstddef>
#include <cstdint>

#include "vhost/vhost_user.h"

namespace nydus::vhost {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little-endian");

constexpr uint16_t VIRTQ_DESC_F_NEXT = 1;
constexpr uint16_t VIRTQ_DESC_F_WRITE = 2;
constexpr uint16_t VIRTQ_DESC_F_INDIRECT = 4;
constexpr uint16_t VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
constexpr uint16_t VIRTQ_USED_F_NO_NOTIFY = 1;

struct VirtqDesc {
  uint64_t addr;  // guest physical
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16 && kIsWireStruct<VirtqDesc>);

struct VirtqUsedElem {
  uint32_t id;   // head index of the completed chain
  uint32_t len;  // bytes written into the chain's device-writable buffers
};
static_assert(sizeof(VirtqUsedElem) == 8 && kIsWireStruct<VirtqUsedElem>);

// Byte sizes of the three structures for a queue of n entries; the trailing u16 of each ring
// (used_event / avail_event) is counted since EVENT_IDX may be negotiated.
constexpr uint64_t DescTableBytes(uint32_t n) { return uint64_t{16} * n; }
constexpr uint64_t AvailRingBytes(uint32_t n) { return 6 + uint64_t{2} * n; }
constexpr uint64_t UsedRingBytes(uint32_t n) { return 6 + uint64_t{8} * n; }
// Alignment required of each structure (VIRTIO 1.2 §2.7 table "Virtqueue Part Alignment").
constexpr uint64_t kDescAlign = 16;
constexpr uint64_t kAvailAlign = 2;
constexpr uint64_t kUsedAlign = 4;

// Offsets inside the rings.
constexpr size_t kAvailFlagsOff = 0;
constexpr size_t kAvailIdxOff = 2;
constexpr size_t kAvailRingOff = 4;
constexpr size_t kUsedFlagsOff = 0;
constexpr size_t kUsedIdxOff = 2;
constexpr size_t kUsedRingOff = 4;

// VIRTIO 1.2 §2.7.7.2 vring_need_event: true if event_idx lies in (old, new].
constexpr bool VringNeedEvent(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

constexpr bool IsPowerOfTwo(uint32_t n) { return n != 0 && (n & (n - 1)) == 0; }

}  // namespace nydus::vhost
