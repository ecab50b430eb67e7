// The vhost-user-fs device state machine: what each well-formed vhost-user message means for the
// device (feature negotiation, memory table, ring configuration, start/stop), independent of the
// socket. The backend's control thread feeds it one framed message at a time; the vhost message
// fuzzer does the same without a socket.
//
// Semantics follow QEMU 7.2 `vhost-user-fs-pci` and cloud-hypervisor `--fs` (reference §1.2-1.5):
// - QEMU stops rings with ENABLE(0) + GET_VRING_BASE and restarts them after a guest reboot on
//   the same connection, possibly without resending memory.
// - cloud-hypervisor sends SET_OWNER before GET_FEATURES, uses SET_MEM_TABLE even with
//   CONFIGURE_MEM_SLOTS, sets NEED_REPLY on every message once REPLY_ACK is negotiated, and on a
//   device reset only disables the rings (ENABLE 0) before reconfiguring them with NUM/ADDR/BASE/
//   CALL/KICK, with no GET_VRING_BASE. A ring reconfigured while running is therefore stopped
//   implicitly first.
// Well-formed but unsupported or invalid requests are refused (logged, failure ack when asked);
// only requests that demand a reply body we cannot produce close the connection.
//
// Thread: every method runs on the control thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "transport/request.h"
#include "vhost/guest_memory.h"
#include "vhost/message.h"
#include "vhost/stats.h"
#include "vhost/vring.h"

namespace nydus::vhost {

struct DeviceOptions {
  uint32_t num_request_queues = 1;  // request queues; hiprio (queue 0) is extra
  uint32_t max_queue_size = 1024;
  bool spawn_workers = true;
  // Bound on waiting for in-flight requests when a ring stops (GET_VRING_BASE).
  std::chrono::milliseconds stop_drain{2000};
  uint32_t max_rounds_per_drain = 64;  // VringOptions::max_rounds_per_drain
  uint32_t max_chains_per_round = 2;   // VringOptions::max_chains_per_round
  uint32_t busy_poll_us = 20;          // VringOptions::busy_poll_us
};

struct Reply {
  bool send = false;
  uint32_t size = 0;
  alignas(8) uint8_t body[64] = {};

  template <typename T>
  void Set(const T& v) {
    static_assert(kIsWireStruct<T> && sizeof(T) <= sizeof(body));
    __builtin_memcpy(body, &v, sizeof(T));
    size = sizeof(T);
    send = true;
  }
  void SetU64(uint64_t v) { Set(VhostUserU64{v}); }
};

class VhostUserFsDevice {
 public:
  VhostUserFsDevice(DeviceOptions options, transport::FuseRequestSink* sink,
                    std::shared_ptr<BackendCounters> counters);
  ~VhostUserFsDevice();
  VhostUserFsDevice(const VhostUserFsDevice&) = delete;
  VhostUserFsDevice& operator=(const VhostUserFsDevice&) = delete;

  // Handles one message that passed CheckFraming. Fills *reply when one must be sent. Returns
  // false when the connection must be closed.
  bool Handle(Message* msg, Reply* reply);
  // The frontend went away: stop every ring, drop memory and negotiated state, tell the sink.
  void Disconnect();

  uint32_t num_queues() const { return static_cast<uint32_t>(vrings_.size()); }
  Vring& vring(uint32_t i) { return *vrings_[i]; }
  uint64_t acked_features() const { return acked_features_; }
  uint64_t protocol_features() const { return protocol_features_; }
  const MemoryTable& memory() const { return memory_; }

 private:
  // Each returns 0 on success or a non-zero status for the REPLY_ACK.
  uint64_t SetFeatures(uint64_t features);
  uint64_t SetProtocolFeatures(uint64_t features);
  uint64_t SetMemTable(Message* msg);
  uint64_t AddMemReg(Message* msg);
  uint64_t RemMemReg(const Message& msg);
  uint64_t SetVringNum(const VhostUserVringState& s);
  uint64_t SetVringAddr(const VhostUserVringAddr& a);
  uint64_t SetVringBase(const VhostUserVringState& s);
  uint64_t SetVringFd(Message* msg);
  uint64_t SetVringEnable(const VhostUserVringState& s);
  VhostUserVringState GetVringBase(const VhostUserVringState& s);
  void ResetRings();
  // Null (and logs) if the index names no queue of this device.
  Vring* RingFor(uint32_t index, uint32_t request);
  // Stops a ring that the frontend reconfigures while it runs.
  void StopForReconfigure(Vring* v, uint32_t request);
  uint64_t StartRing(Vring* v);
  uint64_t Refuse(uint32_t request, const char* why);
  bool reply_ack() const {
    return (protocol_features_ & FeatureBit(VHOST_USER_PROTOCOL_F_REPLY_ACK)) != 0;
  }
  bool protocol_features_acked() const {
    return (acked_features_ & FeatureBit(VHOST_USER_F_PROTOCOL_FEATURES)) != 0;
  }

  const DeviceOptions options_;
  transport::FuseRequestSink* const sink_;
  std::shared_ptr<BackendCounters> counters_;
  MemoryTable memory_;
  std::vector<std::shared_ptr<Vring>> vrings_;
  uint64_t acked_features_ = 0;
  uint64_t protocol_features_ = 0;
  bool owner_ = false;
  bool shared_memory_warned_ = false;
  uint64_t refused_logged_ = 0;  // bitmask of request ids (< 64) already logged as refused
};

// True if fd refers to an eventfd (what kick, call and err fds must be: anything else could block
// the worker or raise SIGPIPE when written).
bool IsEventFd(int fd);

}  // namespace nydus::vhost
