// The frontend side of vhost-user, part 4: a virtio-fs device as a VMM drives it. Replays the
// message sequences QEMU 7.2 `vhost-user-fs-pci` and cloud-hypervisor `--fs` send (reference
// §1.5; cloud-hypervisor virtio-devices/src/vhost_user/{fs.rs,vu_common_ctrl.rs}) over GuestRam
// and DriverQueues with real eventfds, so a backend sees exactly what a VM would make it see.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "driver/frontend/driver_queue.h"
#include "driver/frontend/frontend_client.h"
#include "driver/frontend/guest_ram.h"

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

enum class Flavor : uint8_t {
  // QEMU 7.2: realize (GET_FEATURES, protocol negotiation, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS,
  // [SET_SLAVE_REQ_FD], SET_OWNER, masked CALL/ERR) / start (CALL, SET_FEATURES, ADD_MEM_REG
  // diff or SET_MEM_TABLE, NUM/BASE/ADDR/KICK, ENABLE 1, CALL) / stop (ENABLE 0,
  // GET_VRING_BASE, CALL).
  kQemu72,
  // cloud-hypervisor: SET_OWNER first, NEED_REPLY on everything once REPLY_ACK is negotiated,
  // SET_MEM_TABLE with one region, NUM for all then ADDR/BASE/CALL/KICK, ENABLE; reset only
  // disables the rings.
  kCloudHypervisor,
};

struct SessionOptions {
  Flavor flavor = Flavor::kQemu72;
  uint64_t ram_size = uint64_t{256} << 20;
  uint16_t queue_size = 1024;
  uint32_t num_request_queues = 1;
  // QEMU only: negotiate CONFIGURE_MEM_SLOTS when offered (ADD_MEM_REG); false forces the
  // SET_MEM_TABLE path as with an older QEMU.
  bool mem_slots = true;
  // Indirect table entries per descriptor (Linux virtio-fs: up to 3 + max_pages).
  uint32_t max_indirect = 272;
  int timeout_ms = 10000;
};

class FsFrontendSession {
 public:
  explicit FsFrontendSession(SessionOptions options) : options_(options) {}

  int Connect(const std::string& socket_path, std::string* error);
  // Device realize (QEMU) or construction + negotiation (cloud-hypervisor).
  int Realize(std::string* error);
  // Driver probe: the device starts with fresh rings (a guest reboot allocates new ones).
  int Start(std::string* error);
  // Device stop (QEMU: also reads back every ring base into *bases if non-null) / reset (CH).
  int Stop(std::vector<uint32_t>* bases, std::string* error);

  VhostUserFrontend& client() { return client_; }
  GuestRam& ram() { return *ram_; }
  DriverQueue& queue(uint32_t i) { return *queues_[i]; }
  uint32_t num_queues() const { return 1 + options_.num_request_queues; }
  const SessionOptions& options() const { return options_; }
  int call_fd(uint32_t i) const { return guest_call_[i].get(); }
  int err_fd(uint32_t i) const { return err_[i].get(); }

  // Makes published chains visible to the device and kicks it if it asked.
  void Kick(uint32_t queue);
  // Waits until queue `i` has used entries (arming the interrupt, sleeping on the call fd) and
  // appends them. Returns 0, -ETIMEDOUT.
  int Wait(uint32_t queue, std::vector<VirtqUsedElem>* out, int timeout_ms);

  uint64_t backend_features() const { return backend_features_; }
  uint64_t backend_protocol_features() const { return backend_protocol_; }
  uint64_t acked_features() const { return acked_features_; }
  uint64_t acked_protocol_features() const { return acked_protocol_; }
  uint64_t queue_num() const { return queue_num_; }
  uint64_t max_mem_slots() const { return max_mem_slots_; }
  int starts() const { return starts_; }

 private:
  int RealizeQemu();
  int RealizeCloudHypervisor();
  int StartQemu();
  int StartCloudHypervisor();
  int AllocateQueues(std::string* error);
  int Err(int rc, std::string* error);

  const SessionOptions options_;
  VhostUserFrontend client_;
  std::unique_ptr<GuestRam> ram_;
  std::vector<std::unique_ptr<DriverQueue>> queues_;
  std::vector<UniqueFd> kick_;
  std::vector<UniqueFd> guest_call_;   // what the "guest" waits on
  std::vector<UniqueFd> masked_call_;  // QEMU's masked notifier
  std::vector<UniqueFd> err_;
  uint64_t backend_features_ = 0;
  uint64_t backend_protocol_ = 0;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_ = 0;
  uint64_t queue_num_ = 0;
  uint64_t max_mem_slots_ = 0;
  bool memory_sent_ = false;
  int starts_ = 0;
};

}  // namespace nydus::driver::frontend
