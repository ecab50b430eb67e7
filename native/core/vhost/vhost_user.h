// vhost-user wire protocol: request ids, flag and feature bits, and the payload structs that a
// vhost-user-fs backend exchanges with its frontend (QEMU `vhost-user-fs-pci`, cloud-hypervisor
// `--fs`). Facts from the vhost-user specification and the project reference
// (`vhost-user-fs.md` §1); layouts are host byte order, packed as on the wire.
//
// Layering (style rule 1): this header is syntax only. Every struct is POD with a size check and,
// where a payload carries counts or sizes, an IsValid() that checks the struct against itself.
// What a message means for the device (feature negotiated? ring started?) is decided in
// device.cc; framing (header, fds, payload size per request) is checked in message.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace nydus::vhost {

// Front-end -> back-end request ids (vhost-user spec "Front-end message types"; reference §1.2).
enum VhostUserRequest : uint32_t {
  VHOST_USER_NONE = 0,
  VHOST_USER_GET_FEATURES = 1,
  VHOST_USER_SET_FEATURES = 2,
  VHOST_USER_SET_OWNER = 3,
  VHOST_USER_RESET_OWNER = 4,
  VHOST_USER_SET_MEM_TABLE = 5,
  VHOST_USER_SET_LOG_BASE = 6,
  VHOST_USER_SET_LOG_FD = 7,
  VHOST_USER_SET_VRING_NUM = 8,
  VHOST_USER_SET_VRING_ADDR = 9,
  VHOST_USER_SET_VRING_BASE = 10,
  VHOST_USER_GET_VRING_BASE = 11,
  VHOST_USER_SET_VRING_KICK = 12,
  VHOST_USER_SET_VRING_CALL = 13,
  VHOST_USER_SET_VRING_ERR = 14,
  VHOST_USER_GET_PROTOCOL_FEATURES = 15,
  VHOST_USER_SET_PROTOCOL_FEATURES = 16,
  VHOST_USER_GET_QUEUE_NUM = 17,
  VHOST_USER_SET_VRING_ENABLE = 18,
  VHOST_USER_SEND_RARP = 19,
  VHOST_USER_NET_SET_MTU = 20,
  VHOST_USER_SET_SLAVE_REQ_FD = 21,
  VHOST_USER_IOTLB_MSG = 22,
  VHOST_USER_SET_VRING_ENDIAN = 23,
  VHOST_USER_GET_CONFIG = 24,
  VHOST_USER_SET_CONFIG = 25,
  VHOST_USER_CREATE_CRYPTO_SESSION = 26,
  VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
  VHOST_USER_POSTCOPY_ADVISE = 28,
  VHOST_USER_POSTCOPY_LISTEN = 29,
  VHOST_USER_POSTCOPY_END = 30,
  VHOST_USER_GET_INFLIGHT_FD = 31,
  VHOST_USER_SET_INFLIGHT_FD = 32,
  VHOST_USER_GPU_SET_SOCKET = 33,
  VHOST_USER_RESET_DEVICE = 34,
  VHOST_USER_VRING_KICK = 35,
  VHOST_USER_GET_MAX_MEM_SLOTS = 36,
  VHOST_USER_ADD_MEM_REG = 37,
  VHOST_USER_REM_MEM_REG = 38,
  VHOST_USER_SET_STATUS = 39,
  VHOST_USER_GET_STATUS = 40,
  VHOST_USER_GET_SHARED_OBJECT = 41,
  VHOST_USER_SET_DEVICE_STATE_FD = 42,
  VHOST_USER_CHECK_DEVICE_STATE = 43,
  VHOST_USER_REQUEST_LIMIT = 44,  // first id we do not know
};

// Spec spelling of a request id for logs ("VHOST_USER_SET_MEM_TABLE"); "UNKNOWN" otherwise.
const char* RequestName(uint32_t request);

// Header flags (spec "Header"): bits 0-1 version (must be 1), bit 2 REPLY, bit 3 NEED_REPLY,
// everything else reserved. A reply carries exactly version|REPLY = 0x5 (QEMU's
// vhost_user_read_header rejects anything else with EPROTO; reference §1.1).
constexpr uint32_t VHOST_USER_VERSION_MASK = 0x3;
constexpr uint32_t VHOST_USER_VERSION = 0x1;
constexpr uint32_t VHOST_USER_REPLY_MASK = 0x1u << 2;
constexpr uint32_t VHOST_USER_NEED_REPLY_MASK = 0x1u << 3;
constexpr uint32_t VHOST_USER_REPLY_FLAGS = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;

// Virtio feature bits (VIRTIO 1.2 §6, vhost-user spec) negotiated by GET/SET_FEATURES.
constexpr int VIRTIO_F_NOTIFY_ON_EMPTY = 24;
constexpr int VHOST_F_LOG_ALL = 26;
constexpr int VIRTIO_RING_F_INDIRECT_DESC = 28;
constexpr int VIRTIO_RING_F_EVENT_IDX = 29;
constexpr int VHOST_USER_F_PROTOCOL_FEATURES = 30;  // vhost-user only, not a virtio bit
constexpr int VIRTIO_F_VERSION_1 = 32;
constexpr int VIRTIO_F_IOMMU_PLATFORM = 33;
constexpr int VIRTIO_F_RING_PACKED = 34;

constexpr uint64_t FeatureBit(int bit) { return uint64_t{1} << bit; }

// Protocol feature bits (spec "Protocol features"; QEMU 7.2 accepts 0-16).
constexpr int VHOST_USER_PROTOCOL_F_MQ = 0;
constexpr int VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1;
constexpr int VHOST_USER_PROTOCOL_F_RARP = 2;
constexpr int VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;
constexpr int VHOST_USER_PROTOCOL_F_NET_MTU = 4;
constexpr int VHOST_USER_PROTOCOL_F_SLAVE_REQ = 5;
constexpr int VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6;
constexpr int VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7;
constexpr int VHOST_USER_PROTOCOL_F_PAGEFAULT = 8;
constexpr int VHOST_USER_PROTOCOL_F_CONFIG = 9;
constexpr int VHOST_USER_PROTOCOL_F_SLAVE_SEND_FD = 10;
constexpr int VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11;
constexpr int VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12;
constexpr int VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13;
constexpr int VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14;
constexpr int VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;
constexpr int VHOST_USER_PROTOCOL_F_STATUS = 16;

// What this backend offers (reference §1.3 "recommended"): VERSION_1 (the device is modern-only),
// INDIRECT_DESC (Linux puts every multi-sg request in a table), EVENT_IDX, and the vhost-user
// PROTOCOL_FEATURES bit. Not LOG_ALL (fs is unmigratable in 7.2), not RING_PACKED or
// IOMMU_PLATFORM (not implemented), not NOTIFY_ON_EMPTY (Linux never takes it).
constexpr uint64_t kBackendFeatures =
    FeatureBit(VIRTIO_F_VERSION_1) | FeatureBit(VIRTIO_RING_F_INDIRECT_DESC) |
    FeatureBit(VIRTIO_RING_F_EVENT_IDX) | FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES);
// MQ | REPLY_ACK | CONFIGURE_MEM_SLOTS = 0x8009. No SLAVE_REQ (only DAX/IOTLB need it), no
// CONFIG (QEMU masks it for fs and serves the tag itself), no STATUS (buys nothing on 7.2).
constexpr uint64_t kBackendProtocolFeatures = FeatureBit(VHOST_USER_PROTOCOL_F_MQ) |
                                              FeatureBit(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                                              FeatureBit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);

// Limits. Every fs message is <= 268 bytes (reference §1.1); rust-vmm refuses payloads over
// 0x1000 and we do the same. SET_MEM_TABLE carries at most 8 regions (VHOST_MEMORY_BASELINE
// _NREGIONS); GET_MAX_MEM_SLOTS advertises 32 slots like libvhost-user.
constexpr uint32_t kMaxPayloadSize = 0x1000;
constexpr size_t kMaxFdsPerMessage = 8;
constexpr uint32_t kMaxMemTableRegions = 8;
constexpr uint32_t kMaxMemSlots = 32;
// Split rings hold at most 32768 entries (VIRTIO 1.2 §2.7); QEMU caps vhost-user-fs at 1024.
constexpr uint32_t kMaxSplitQueueSize = 32768;

// SET_VRING_KICK/CALL/ERR payload: bits 0-7 ring index, bit 8 "no fd attached" (poll instead).
constexpr uint64_t VHOST_USER_VRING_IDX_MASK = 0xff;
constexpr uint64_t VHOST_USER_VRING_NOFD_MASK = uint64_t{1} << 8;
// SET_VRING_ADDR flags bit 0: log used-ring writes (migration only, we never offer LOG_ALL).
constexpr uint32_t VHOST_VRING_F_LOG = 1;

template <typename T>
constexpr bool kIsWireStruct = std::is_trivially_copyable_v<T>&& std::is_standard_layout_v<T>;

struct VhostUserHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes following the header

  bool IsValid() const {
    // Version 1, not a reply, no reserved bits (rust-vmm VhostUserMsgHeader::is_valid).
    return (flags & VHOST_USER_VERSION_MASK) == VHOST_USER_VERSION &&
           (flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_NEED_REPLY_MASK)) == 0 &&
           size <= kMaxPayloadSize;
  }
  bool need_reply() const { return (flags & VHOST_USER_NEED_REPLY_MASK) != 0; }
};
static_assert(sizeof(VhostUserHeader) == 12 && kIsWireStruct<VhostUserHeader>);

struct VhostUserU64 {
  uint64_t value;
};
static_assert(sizeof(VhostUserU64) == 8 && kIsWireStruct<VhostUserU64>);

// struct vhost_vring_state
struct VhostUserVringState {
  uint32_t index;
  uint32_t num;
};
static_assert(sizeof(VhostUserVringState) == 8 && kIsWireStruct<VhostUserVringState>);

// struct vhost_vring_addr. desc/used/avail are frontend virtual addresses (QVAs) unless
// IOMMU_PLATFORM is negotiated (never, here); log is a guest physical address.
struct VhostUserVringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;

  bool IsValid() const { return (flags & ~VHOST_VRING_F_LOG) == 0; }
};
static_assert(sizeof(VhostUserVringAddr) == 40 && kIsWireStruct<VhostUserVringAddr>);

// One memory region: [guest_phys_addr, +memory_size) in guest physical space and
// [userspace_addr, +memory_size) in the frontend's address space, backed by the attached fd at
// file offset mmap_offset.
struct VhostUserMemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;

  bool IsValid() const {
    uint64_t end = 0;
    return memory_size != 0 && !__builtin_add_overflow(guest_phys_addr, memory_size, &end) &&
           !__builtin_add_overflow(userspace_addr, memory_size, &end) &&
           !__builtin_add_overflow(mmap_offset, memory_size, &end);
  }
};
static_assert(sizeof(VhostUserMemoryRegion) == 32 && kIsWireStruct<VhostUserMemoryRegion>);

// SET_MEM_TABLE: header part; `nregions` regions follow, one fd each.
struct VhostUserMemoryHeader {
  uint32_t nregions;
  uint32_t padding;

  bool IsValid() const { return nregions <= kMaxMemTableRegions; }
  // Exact payload size for this many regions.
  uint32_t PayloadSize() const {
    return static_cast<uint32_t>(sizeof(VhostUserMemoryHeader) +
                                 size_t{nregions} * sizeof(VhostUserMemoryRegion));
  }
};
static_assert(sizeof(VhostUserMemoryHeader) == 8 && kIsWireStruct<VhostUserMemoryHeader>);

// ADD_MEM_REG / REM_MEM_REG payload.
struct VhostUserSingleMemRegion {
  uint64_t padding;
  VhostUserMemoryRegion region;
};
static_assert(sizeof(VhostUserSingleMemRegion) == 40 && kIsWireStruct<VhostUserSingleMemRegion>);

// The largest legal fs payload: a full SET_MEM_TABLE.
constexpr uint32_t kMaxMemTablePayload =
    sizeof(VhostUserMemoryHeader) + kMaxMemTableRegions * sizeof(VhostUserMemoryRegion);
static_assert(kMaxMemTablePayload == 264);

}  // namespace nydus::vhost
