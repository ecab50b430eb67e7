#include "driver/frontend/fs_session.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;
namespace {

// What a Linux 6.1 guest acks of what QEMU/cloud-hypervisor offer for virtio-fs (observed guest
// features: bits 28, 29, 32; reference §1.3).
constexpr uint64_t kGuestAcks = FeatureBit(VIRTIO_F_VERSION_1) |
                                FeatureBit(VIRTIO_RING_F_INDIRECT_DESC) |
                                FeatureBit(VIRTIO_RING_F_EVENT_IDX);
// QEMU 7.2 knows protocol bits 0-16; vhost-user-fs drops CONFIG, and INBAND_NOTIFICATIONS is
// reserved there.
constexpr uint64_t kQemuProtocolMask = ((uint64_t{1} << 17) - 1) &
                                       ~FeatureBit(VHOST_USER_PROTOCOL_F_CONFIG) &
                                       ~FeatureBit(VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS);
// cloud-hypervisor's vhost-user-fs offer (fs.rs).
constexpr uint64_t kChProtocolOffer =
    FeatureBit(VHOST_USER_PROTOCOL_F_MQ) | FeatureBit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
    FeatureBit(VHOST_USER_PROTOCOL_F_REPLY_ACK) | FeatureBit(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |
    FeatureBit(VHOST_USER_PROTOCOL_F_LOG_SHMFD);

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

int FsFrontendSession::Err(int rc, std::string* error) {
  if (rc != 0 && error != nullptr) *error = client_.last_error();
  return rc;
}

int FsFrontendSession::Connect(const std::string& socket_path, std::string* error) {
  client_.set_timeout_ms(options_.timeout_ms);
  int rc = client_.Connect(socket_path, error);
  if (rc != 0) return rc;
  RamLayout layout =
      options_.flavor == Flavor::kQemu72 ? RamLayout::kQemuSplit : RamLayout::kSingle;
  ram_ = GuestRam::Create(options_.ram_size, layout, error);
  if (ram_ == nullptr) return -ENOMEM;
  const uint32_t n = num_queues();
  for (uint32_t i = 0; i < n; ++i) {
    kick_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    guest_call_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    masked_call_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    err_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  return 0;
}

int FsFrontendSession::Realize(std::string* error) {
  int rc = options_.flavor == Flavor::kQemu72 ? RealizeQemu() : RealizeCloudHypervisor();
  return Err(rc, error);
}

int FsFrontendSession::RealizeQemu() {
  VhostUserFrontend& c = client_;
  c.set_ack_policy(AckPolicy::kMemoryUpdates);
  int rc = c.GetU64(VHOST_USER_GET_FEATURES, &backend_features_);
  if (rc != 0) return rc;
  if ((backend_features_ & FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES)) != 0) {
    if ((rc = c.GetU64(VHOST_USER_GET_PROTOCOL_FEATURES, &backend_protocol_)) != 0) return rc;
    acked_protocol_ = backend_protocol_ & kQemuProtocolMask;
    if (!options_.mem_slots) {
      acked_protocol_ &= ~FeatureBit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
    }
    if ((rc = c.SetU64(VHOST_USER_SET_PROTOCOL_FEATURES, acked_protocol_)) != 0) return rc;
    c.set_reply_ack((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_REPLY_ACK)) != 0);
  }
  if ((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_MQ)) != 0) {
    if ((rc = c.GetU64(VHOST_USER_GET_QUEUE_NUM, &queue_num_)) != 0) return rc;
  }
  if ((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) != 0) {
    if ((rc = c.GetU64(VHOST_USER_GET_MAX_MEM_SLOTS, &max_mem_slots_)) != 0) return rc;
  }
  if ((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_SLAVE_REQ)) != 0) {
    if ((rc = c.SetSlaveReqFd()) != 0) return rc;
  }
  if ((rc = c.Simple(VHOST_USER_SET_OWNER)) != 0) return rc;
  uint64_t again = 0;
  if ((rc = c.GetU64(VHOST_USER_GET_FEATURES, &again)) != 0) return rc;
  for (uint32_t i = 0; i < num_queues(); ++i) {
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_CALL, i, masked_call_[i].get())) != 0) return rc;
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_ERR, i, err_[i].get())) != 0) return rc;
  }
  return 0;
}

int FsFrontendSession::RealizeCloudHypervisor() {
  VhostUserFrontend& c = client_;
  c.set_ack_policy(AckPolicy::kEveryMessage);
  int rc = c.Simple(VHOST_USER_SET_OWNER);
  if (rc != 0) return rc;
  if ((rc = c.GetU64(VHOST_USER_GET_FEATURES, &backend_features_)) != 0) return rc;
  if ((backend_features_ & FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES)) != 0) {
    if ((rc = c.GetU64(VHOST_USER_GET_PROTOCOL_FEATURES, &backend_protocol_)) != 0) return rc;
    acked_protocol_ = backend_protocol_ & kChProtocolOffer;
    if ((rc = c.SetU64(VHOST_USER_SET_PROTOCOL_FEATURES, acked_protocol_)) != 0) return rc;
    c.set_reply_ack((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_REPLY_ACK)) != 0);
  }
  if ((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_MQ)) != 0) {
    if ((rc = c.GetU64(VHOST_USER_GET_QUEUE_NUM, &queue_num_)) != 0) return rc;
    if (queue_num_ < num_queues()) {
      return -EINVAL;  // cloud-hypervisor refuses: "requested too many queues"
    }
  }
  return 0;
}

int FsFrontendSession::AllocateQueues(std::string* error) {
  // Each start gets fresh rings, as a rebooted guest allocates new ones.
  queues_.clear();
  bool event_idx = (acked_features_ & FeatureBit(VIRTIO_RING_F_EVENT_IDX)) != 0;
  for (uint32_t i = 0; i < num_queues(); ++i) {
    auto q = std::make_unique<DriverQueue>();
    int rc = q->Init(ram_.get(), options_.queue_size, event_idx, options_.max_indirect, error);
    if (rc != 0) return rc;
    queues_.push_back(std::move(q));
  }
  return 0;
}

int FsFrontendSession::Start(std::string* error) {
  acked_features_ = (backend_features_ & kGuestAcks) |
                    (backend_features_ & FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES));
  int rc = AllocateQueues(error);
  if (rc != 0) return rc;
  rc = options_.flavor == Flavor::kQemu72 ? StartQemu() : StartCloudHypervisor();
  if (rc == 0) ++starts_;
  return Err(rc, error);
}

int FsFrontendSession::StartQemu() {
  VhostUserFrontend& c = client_;
  const uint32_t n = num_queues();
  int rc;
  for (uint32_t i = 0; i < n; ++i) {
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_CALL, i, masked_call_[i].get())) != 0) return rc;
  }
  if ((rc = c.SetU64(VHOST_USER_SET_FEATURES, acked_features_)) != 0) return rc;
  if ((acked_protocol_ & FeatureBit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) != 0) {
    // Only the difference to what the backend already has is sent (nothing after a reboot).
    if (!memory_sent_) {
      for (const auto& r : ram_->Regions()) {
        if ((rc = c.AddMemReg(r, ram_->fd())) != 0) return rc;
      }
    }
  } else {
    if ((rc = c.SetMemTable(ram_->Regions(), ram_->fd())) != 0) return rc;
  }
  memory_sent_ = true;
  for (uint32_t i = 0; i < n; ++i) {
    DriverQueue& q = *queues_[i];
    if ((rc = c.SetVringState(VHOST_USER_SET_VRING_NUM, i, q.size())) != 0) return rc;
    if ((rc = c.SetVringState(VHOST_USER_SET_VRING_BASE, i, 0)) != 0) return rc;
    if ((rc = c.SetVringAddr(i, ram_->Uva(q.desc_gpa()), ram_->Uva(q.used_gpa()),
                             ram_->Uva(q.avail_gpa()), q.used_gpa())) != 0) {
      return rc;
    }
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_KICK, i, kick_[i].get())) != 0) return rc;
  }
  if ((acked_features_ & FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES)) != 0) {
    for (uint32_t i = 0; i < n; ++i) {
      if ((rc = c.SetVringState(VHOST_USER_SET_VRING_ENABLE, i, 1)) != 0) return rc;
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_CALL, i, guest_call_[i].get())) != 0) return rc;
  }
  return 0;
}

int FsFrontendSession::StartCloudHypervisor() {
  VhostUserFrontend& c = client_;
  const uint32_t n = num_queues();
  int rc;
  if ((rc = c.SetU64(VHOST_USER_SET_FEATURES, acked_features_)) != 0) return rc;
  if ((rc = c.SetMemTable(ram_->Regions(), ram_->fd())) != 0) return rc;
  for (uint32_t i = 0; i < n; ++i) {
    if ((rc = c.SetVringState(VHOST_USER_SET_VRING_NUM, i, queues_[i]->size())) != 0) return rc;
  }
  for (uint32_t i = 0; i < n; ++i) {
    DriverQueue& q = *queues_[i];
    // vu_common_ctrl.rs: flags 0, no log address.
    if ((rc = c.SetVringAddr(i, ram_->Uva(q.desc_gpa()), ram_->Uva(q.used_gpa()),
                             ram_->Uva(q.avail_gpa()), 0)) != 0) {
      return rc;
    }
    if ((rc = c.SetVringState(VHOST_USER_SET_VRING_BASE, i, q.avail_idx())) != 0) return rc;
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_CALL, i, guest_call_[i].get())) != 0) return rc;
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_KICK, i, kick_[i].get())) != 0) return rc;
  }
  for (uint32_t i = 0; i < n; ++i) {
    if ((rc = c.SetVringState(VHOST_USER_SET_VRING_ENABLE, i, 1)) != 0) return rc;
  }
  return 0;
}

int FsFrontendSession::Stop(std::vector<uint32_t>* bases, std::string* error) {
  VhostUserFrontend& c = client_;
  const uint32_t n = num_queues();
  int rc;
  if ((acked_features_ & FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES)) != 0) {
    for (uint32_t i = 0; i < n; ++i) {
      if ((rc = c.SetVringState(VHOST_USER_SET_VRING_ENABLE, i, 0)) != 0) return Err(rc, error);
    }
  }
  if (options_.flavor == Flavor::kCloudHypervisor) return 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t base = 0;
    if ((rc = c.GetVringBase(i, &base)) != 0) return Err(rc, error);
    if (bases != nullptr) bases->push_back(base);
  }
  for (uint32_t i = 0; i < n; ++i) {
    if ((rc = c.SetVringFd(VHOST_USER_SET_VRING_CALL, i, masked_call_[i].get())) != 0) {
      return Err(rc, error);
    }
  }
  return 0;
}

void FsFrontendSession::Kick(uint32_t queue) {
  if (queues_[queue]->Publish()) {
    uint64_t one = 1;
    (void)!::write(kick_[queue].get(), &one, sizeof(one));
  }
}

int FsFrontendSession::Wait(uint32_t queue, std::vector<VirtqUsedElem>* out, int timeout_ms) {
  DriverQueue& q = *queues_[queue];
  const int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    if (q.Collect(out) > 0) return 0;
    if (q.ArmInterrupt()) continue;
    int64_t left = deadline - NowMs();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {guest_call_[queue].get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) return -errno;
    if (n > 0) {
      uint64_t v;
      (void)!::read(guest_call_[queue].get(), &v, sizeof(v));
    }
  }
}

}  // namespace nydus::driver::frontend
