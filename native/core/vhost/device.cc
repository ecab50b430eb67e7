#include "vhost/device.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "common/log.h"
#include "vhost/virtq.h"

namespace nydus::vhost {
namespace {

constexpr const char* kLog = "vhost";
constexpr uint64_t kAckOk = 0;
constexpr uint64_t kAckFailed = 1;

}  // namespace

bool IsEventFd(int fd) {
  char path[64];
  char target[64];
  std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(path, target, sizeof(target) - 1);
  if (n <= 0) {
    // No procfs to ask (a minimal container): accept rather than refuse every ring.
    return errno == ENOENT && ::access("/proc/self/fd", F_OK) != 0;
  }
  target[n] = '\0';
  return strcmp(target, "anon_inode:[eventfd]") == 0;
}

VhostUserFsDevice::VhostUserFsDevice(DeviceOptions options, transport::FuseRequestSink* sink,
                                     std::shared_ptr<BackendCounters> counters)
    : options_(options), sink_(sink), counters_(std::move(counters)) {
  const uint32_t n = 1 + options_.num_request_queues;
  vrings_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    VringOptions vo;
    vo.index = static_cast<uint16_t>(i);
    vo.max_queue_size = options_.max_queue_size;
    vo.sink = sink_;
    vo.memory = &memory_;
    vo.counters = counters_;
    vo.spawn_worker = options_.spawn_workers;
    vo.max_rounds_per_drain = options_.max_rounds_per_drain;
    vo.max_chains_per_round = options_.max_chains_per_round;
    vo.busy_poll_us = options_.busy_poll_us;
    vrings_.push_back(std::make_shared<Vring>(vo));
  }
}

VhostUserFsDevice::~VhostUserFsDevice() { ResetRings(); }

void VhostUserFsDevice::ResetRings() {
  for (auto& v : vrings_) v->Reset();
}

void VhostUserFsDevice::Disconnect() {
  ResetRings();
  memory_.Replace(std::make_shared<const GuestMemory>());
  acked_features_ = 0;
  protocol_features_ = 0;
  owner_ = false;
  shared_memory_warned_ = false;
  if (sink_ != nullptr) sink_->OnSessionReset();
}

uint64_t VhostUserFsDevice::Refuse(uint32_t request, const char* why) {
  BackendCounters::Add(counters_->refused_messages);
  uint64_t bit = request < 64 ? uint64_t{1} << request : 0;
  // Once per request type and connection lifetime of the process is enough to diagnose.
  if (bit == 0 || (refused_logged_ & bit) == 0) {
    refused_logged_ |= bit;
    NLOG_WARN(kLog, "refused %s (%u): %s", RequestName(request), request, why);
  }
  return kAckFailed;
}

bool VhostUserFsDevice::Handle(Message* msg, Reply* reply) {
  BackendCounters::Add(counters_->messages);
  const VhostUserHeader& h = msg->header;
  reply->send = false;
  uint64_t status = kAckOk;
  NLOG_DEBUG(kLog, "%s size=%u fds=%zu%s", RequestName(h.request), h.size, msg->num_fds,
             h.need_reply() ? " need_reply" : "");
  switch (h.request) {
    case VHOST_USER_GET_FEATURES:
      reply->SetU64(kBackendFeatures);
      break;
    case VHOST_USER_SET_FEATURES:
      status = SetFeatures(msg->PayloadAs<VhostUserU64>().value);
      break;
    case VHOST_USER_SET_OWNER:
      owner_ = true;
      break;
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
      // Deprecated / never sent by fs frontends; rust-vmm semantics: rings stop and the
      // negotiated virtio features are forgotten, the connection and memory stay.
      ResetRings();
      acked_features_ = 0;
      if (h.request == VHOST_USER_RESET_OWNER) owner_ = false;
      break;
    case VHOST_USER_GET_PROTOCOL_FEATURES:
      reply->SetU64(kBackendProtocolFeatures);
      break;
    case VHOST_USER_SET_PROTOCOL_FEATURES:
      status = SetProtocolFeatures(msg->PayloadAs<VhostUserU64>().value);
      break;
    case VHOST_USER_GET_QUEUE_NUM:
      reply->SetU64(num_queues());
      break;
    case VHOST_USER_GET_MAX_MEM_SLOTS:
      reply->SetU64(kMaxMemSlots);
      break;
    case VHOST_USER_SET_MEM_TABLE:
      status = SetMemTable(msg);
      break;
    case VHOST_USER_ADD_MEM_REG:
      status = AddMemReg(msg);
      break;
    case VHOST_USER_REM_MEM_REG:
      status = RemMemReg(*msg);
      break;
    case VHOST_USER_SET_VRING_NUM:
      status = SetVringNum(msg->PayloadAs<VhostUserVringState>());
      break;
    case VHOST_USER_SET_VRING_ADDR:
      status = SetVringAddr(msg->PayloadAs<VhostUserVringAddr>());
      break;
    case VHOST_USER_SET_VRING_BASE:
      status = SetVringBase(msg->PayloadAs<VhostUserVringState>());
      break;
    case VHOST_USER_GET_VRING_BASE:
      reply->Set(GetVringBase(msg->PayloadAs<VhostUserVringState>()));
      break;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
      status = SetVringFd(msg);
      break;
    case VHOST_USER_SET_VRING_ENABLE:
      status = SetVringEnable(msg->PayloadAs<VhostUserVringState>());
      break;
    // Requests whose reply carries a body we cannot produce: a frontend that sends them expects
    // a feature we never offered, and answering anything else would desynchronise the stream.
    case VHOST_USER_GET_CONFIG:
    case VHOST_USER_GET_INFLIGHT_FD:
    case VHOST_USER_GET_STATUS:
    case VHOST_USER_POSTCOPY_ADVISE:
    case VHOST_USER_GET_SHARED_OBJECT:
    case VHOST_USER_CHECK_DEVICE_STATE:
    case VHOST_USER_SET_DEVICE_STATE_FD:
    case VHOST_USER_IOTLB_MSG:
      BackendCounters::Add(counters_->refused_messages);
      NLOG_ERROR(kLog,
                 "%s (%u) needs a feature this backend does not offer and expects a reply; "
                 "closing the connection",
                 RequestName(h.request), h.request);
      return false;
    case VHOST_USER_SET_SLAVE_REQ_FD:
      status = Refuse(h.request, "SLAVE_REQ was not offered (no DAX, no IOTLB)");
      break;
    case VHOST_USER_SET_LOG_BASE:
    case VHOST_USER_SET_LOG_FD:
      status = Refuse(h.request, "dirty logging is not supported (vhost-user-fs is unmigratable)");
      break;
    default:
      status = Refuse(h.request, "not supported by vhost-user-fs in this backend");
      break;
  }
  // REPLY_ACK (reference §1.3): a message with NEED_REPLY and no reply of its own gets u64
  // 0 (success) or non-zero, after the action is complete.
  if (!reply->send && h.need_reply() && reply_ack()) reply->SetU64(status);
  return true;
}

uint64_t VhostUserFsDevice::SetFeatures(uint64_t features) {
  if ((features & ~kBackendFeatures) != 0) {
    NLOG_WARN(kLog, "SET_FEATURES 0x%" PRIx64 " has bits we never offered (0x%" PRIx64 ")",
              features, features & ~kBackendFeatures);
    BackendCounters::Add(counters_->refused_messages);
    return kAckFailed;
  }
  if ((features & FeatureBit(VIRTIO_F_VERSION_1)) == 0) {
    NLOG_WARN(kLog, "SET_FEATURES 0x%" PRIx64 " without VIRTIO_F_VERSION_1 (legacy driver?)",
              features);
  }
  acked_features_ = features;
  // Without PROTOCOL_FEATURES there is no SET_VRING_ENABLE: rings are enabled once started
  // (reference §1.4; rust-vmm enables all rings here).
  if (!protocol_features_acked()) {
    for (auto& v : vrings_) v->SetEnabled(true);
  }
  return kAckOk;
}

uint64_t VhostUserFsDevice::SetProtocolFeatures(uint64_t features) {
  if ((features & ~kBackendProtocolFeatures) != 0) {
    NLOG_WARN(kLog,
              "SET_PROTOCOL_FEATURES 0x%" PRIx64 " has bits we never offered; using 0x%" PRIx64,
              features, features & kBackendProtocolFeatures);
  }
  protocol_features_ = features & kBackendProtocolFeatures;
  return kAckOk;
}

uint64_t VhostUserFsDevice::SetMemTable(Message* msg) {
  auto hdr = msg->PayloadAs<VhostUserMemoryHeader>();
  std::vector<std::shared_ptr<const MappedRegion>> maps;
  GuestMemory building;
  for (uint32_t i = 0; i < hdr.nregions; ++i) {
    VhostUserMemoryRegion r;
    // Size was checked by CheckFraming against nregions.
    memcpy(&r, msg->payload.data() + sizeof(hdr) + i * sizeof(r), sizeof(r));
    std::string error;
    if (!r.IsValid() || !building.CanAdd(r, &error)) {
      if (error.empty()) error = "empty or overflowing region";
      NLOG_ERROR(kLog, "SET_MEM_TABLE region %u refused: %s", i, error.c_str());
      return kAckFailed;
    }
    auto m = MappedRegion::Map(msg->fds[i].get(), r, &error);
    if (m == nullptr) {
      NLOG_ERROR(kLog, "SET_MEM_TABLE region %u refused: %s", i, error.c_str());
      return kAckFailed;
    }
    maps.push_back(std::move(m));
    building = GuestMemory(maps);
  }
  if (hdr.nregions == 0) {
    NLOG_WARN(kLog, "SET_MEM_TABLE without regions: the guest's RAM is not shared");
  }
  // The fds are closed with the message: the mappings keep the memory.
  memory_.Replace(std::make_shared<const GuestMemory>(std::move(maps)));
  return kAckOk;
}

uint64_t VhostUserFsDevice::AddMemReg(Message* msg) {
  auto p = msg->PayloadAs<VhostUserSingleMemRegion>();
  auto current = memory_.Current();
  std::string error;
  if (current->num_regions() >= kMaxMemSlots) {
    NLOG_ERROR(kLog, "ADD_MEM_REG refused: all %u memory slots are in use", kMaxMemSlots);
    return kAckFailed;
  }
  if (!p.region.IsValid() || !current->CanAdd(p.region, &error)) {
    if (error.empty()) error = "empty or overflowing region";
    NLOG_ERROR(kLog, "ADD_MEM_REG refused: %s", error.c_str());
    return kAckFailed;
  }
  auto m = MappedRegion::Map(msg->fds[0].get(), p.region, &error);
  if (m == nullptr) {
    NLOG_ERROR(kLog, "ADD_MEM_REG refused: %s", error.c_str());
    return kAckFailed;
  }
  auto regions = current->regions();
  regions.push_back(std::move(m));
  memory_.Replace(std::make_shared<const GuestMemory>(std::move(regions)));
  return kAckOk;
}

uint64_t VhostUserFsDevice::RemMemReg(const Message& msg) {
  auto p = msg.PayloadAs<VhostUserSingleMemRegion>();
  auto current = memory_.Current();
  auto regions = current->regions();
  for (size_t i = 0; i < regions.size(); ++i) {
    // QEMU matches by gpa, size and userspace address (mmap_offset is sent as 0).
    const VhostUserMemoryRegion& r = regions[i]->info();
    if (r.guest_phys_addr == p.region.guest_phys_addr && r.memory_size == p.region.memory_size &&
        r.userspace_addr == p.region.userspace_addr) {
      regions.erase(regions.begin() + static_cast<ptrdiff_t>(i));
      // Rings and in-flight requests that use the region keep their own snapshot: the memory is
      // unmapped only when they are done with it.
      memory_.Replace(std::make_shared<const GuestMemory>(std::move(regions)));
      return kAckOk;
    }
  }
  NLOG_WARN(kLog, "REM_MEM_REG of unknown region gpa=0x%" PRIx64 " size=0x%" PRIx64,
            p.region.guest_phys_addr, p.region.memory_size);
  return kAckFailed;
}

Vring* VhostUserFsDevice::RingFor(uint32_t index, uint32_t request) {
  if (index < vrings_.size()) return vrings_[index].get();
  char why[160];
  std::snprintf(why, sizeof(why),
                "queue index %u but this backend has %u queues (hiprio + %u request queues); "
                "lower num-request-queues",
                index, num_queues(), options_.num_request_queues);
  Refuse(request, why);
  return nullptr;
}

void VhostUserFsDevice::StopForReconfigure(Vring* v, uint32_t request) {
  if (!v->running()) return;
  // cloud-hypervisor reconfigures rings after ENABLE(0) without GET_VRING_BASE.
  NLOG_DEBUG(kLog, "%s on running queue %u: stopping it first", RequestName(request), v->index());
  v->Stop(options_.stop_drain);
}

uint64_t VhostUserFsDevice::SetVringNum(const VhostUserVringState& s) {
  Vring* v = RingFor(s.index, VHOST_USER_SET_VRING_NUM);
  if (v == nullptr) return kAckFailed;
  StopForReconfigure(v, VHOST_USER_SET_VRING_NUM);
  if (!IsPowerOfTwo(s.num) || s.num > options_.max_queue_size) {
    v->config().num = 0;
    char why[96];
    std::snprintf(why, sizeof(why), "queue size %u is not a power of two in 1..%u", s.num,
                  options_.max_queue_size);
    return Refuse(VHOST_USER_SET_VRING_NUM, why);
  }
  v->config().num = s.num;
  return kAckOk;
}

uint64_t VhostUserFsDevice::SetVringAddr(const VhostUserVringAddr& a) {
  Vring* v = RingFor(a.index, VHOST_USER_SET_VRING_ADDR);
  if (v == nullptr) return kAckFailed;
  StopForReconfigure(v, VHOST_USER_SET_VRING_ADDR);
  if (!a.IsValid()) return Refuse(VHOST_USER_SET_VRING_ADDR, "unknown flags");
  if (memory_.Current()->num_regions() == 0 && !shared_memory_warned_) {
    shared_memory_warned_ = true;
    NLOG_ERROR(kLog,
               "the frontend set ring addresses but shared no guest memory: the guest's RAM must "
               "be shared with this backend; start QEMU with -object "
               "memory-backend-memfd,id=mem,size=<RAM>,share=on -numa node,memdev=mem");
  }
  Vring::Config& c = v->config();
  c.desc_uva = a.desc_user_addr;
  c.avail_uva = a.avail_user_addr;
  c.used_uva = a.used_user_addr;
  c.addr_set = true;
  return kAckOk;
}

uint64_t VhostUserFsDevice::SetVringBase(const VhostUserVringState& s) {
  Vring* v = RingFor(s.index, VHOST_USER_SET_VRING_BASE);
  if (v == nullptr) return kAckFailed;
  StopForReconfigure(v, VHOST_USER_SET_VRING_BASE);
  if (s.num > UINT16_MAX) return Refuse(VHOST_USER_SET_VRING_BASE, "split ring base over 65535");
  v->config().base = static_cast<uint16_t>(s.num);
  return kAckOk;
}

VhostUserVringState VhostUserFsDevice::GetVringBase(const VhostUserVringState& s) {
  Vring* v = RingFor(s.index, VHOST_USER_GET_VRING_BASE);
  if (v == nullptr) return VhostUserVringState{s.index, 0};
  // The ring is stopped (reference §1.4): no more pops, bounded wait for in-flight requests, and
  // it must be enabled again after its next start.
  uint16_t base = v->Stop(options_.stop_drain);
  v->SetEnabled(false);
  return VhostUserVringState{s.index, base};
}

uint64_t VhostUserFsDevice::SetVringFd(Message* msg) {
  const uint32_t request = msg->header.request;
  const uint64_t value = msg->PayloadAs<VhostUserU64>().value;
  Vring* v = RingFor(static_cast<uint32_t>(value & VHOST_USER_VRING_IDX_MASK), request);
  if (v == nullptr) return kAckFailed;
  UniqueFd fd = msg->TakeFd(0);
  if (fd.valid() && !IsEventFd(fd.get())) return Refuse(request, "the attached fd is no eventfd");
  switch (request) {
    case VHOST_USER_SET_VRING_CALL:
      v->SetCallFd(std::move(fd));
      return kAckOk;
    case VHOST_USER_SET_VRING_ERR:
      v->SetErrFd(std::move(fd));
      return kAckOk;
    default:
      StopForReconfigure(v, request);
      v->SetKickFd(std::move(fd));
      // Without PROTOCOL_FEATURES a started ring is enabled at once (reference §1.4).
      if (!protocol_features_acked()) v->SetEnabled(true);
      return StartRing(v);
  }
}

uint64_t VhostUserFsDevice::StartRing(Vring* v) {
  std::string error;
  auto mem = memory_.Current();
  bool event_idx = (acked_features_ & FeatureBit(VIRTIO_RING_F_EVENT_IDX)) != 0;
  int rc = v->Start(mem, event_idx, &error);
  if (rc != 0) {
    if (mem->num_regions() == 0) {
      error += "; no guest memory is shared (QEMU needs memory-backend-memfd,share=on + -numa)";
    }
    NLOG_ERROR(kLog, "cannot start queue %u: %s", v->index(), error.c_str());
    BackendCounters::Add(counters_->refused_messages);
    return kAckFailed;
  }
  NLOG_DEBUG(kLog, "queue %u started: size %u, base %u, event_idx %d", v->index(), v->config().num,
             v->config().base, event_idx ? 1 : 0);
  return kAckOk;
}

uint64_t VhostUserFsDevice::SetVringEnable(const VhostUserVringState& s) {
  Vring* v = RingFor(s.index, VHOST_USER_SET_VRING_ENABLE);
  if (v == nullptr) return kAckFailed;
  if (s.num > 1) return Refuse(VHOST_USER_SET_VRING_ENABLE, "enable value is neither 0 nor 1");
  v->SetEnabled(s.num == 1);
  return kAckOk;
}

}  // namespace nydus::vhost
