// The frontend side of vhost-user, part 2: the message client a VMM uses to drive a backend.
// Every reply is checked the way QEMU 7.2 checks it (flags exactly 0x5, same request id, exact
// size; reference §1.1), so driving a backend through this client is also a conformance test of
// its replies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vhost/vhost_user.h"

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

// When NEED_REPLY is set (only once REPLY_ACK is negotiated): QEMU 7.2 asks for acks on memory
// table updates; cloud-hypervisor (rust-vmm Frontend with set_hdr_flags(NEED_REPLY)) on every
// message without a reply body.
enum class AckPolicy : uint8_t { kNone, kMemoryUpdates, kEveryMessage };

class VhostUserFrontend {
 public:
  VhostUserFrontend() = default;

  // Connects to a listening backend. Returns 0 or -errno.
  int Connect(const std::string& path, std::string* error);
  void Adopt(UniqueFd fd) { fd_ = std::move(fd); }
  void Close() { fd_.reset(); }
  int fd() const { return fd_.get(); }
  bool connected() const { return fd_.valid(); }

  void set_ack_policy(AckPolicy p) { ack_policy_ = p; }
  void set_reply_ack(bool on) { reply_ack_ = on; }
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }
  // One line per message sent ("SET_VRING_NUM 1 1024"), for `info` and golden-order tests.
  const std::vector<std::string>& trace() const { return trace_; }
  void clear_trace() { trace_.clear(); }
  const std::string& last_error() const { return last_error_; }

  // Low level: sends one request (NEED_REPLY per the ack policy unless `force_need_reply`).
  int Send(uint32_t request, const void* payload, uint32_t size, const int* fds, size_t num_fds,
           bool need_reply);
  // Receives the reply to `request` with exactly `size` payload bytes into out.
  int Recv(uint32_t request, void* out, uint32_t size);

  // Typed requests. All return 0 or -errno (-EIO when the backend acked with a failure,
  // -EPROTO for a malformed reply, -ETIMEDOUT, -ECONNRESET).
  int GetU64(uint32_t request, uint64_t* value);
  int SetU64(uint32_t request, uint64_t value);
  int Simple(uint32_t request);  // no payload: SET_OWNER, RESET_OWNER
  int SetVringState(uint32_t request, uint32_t index, uint32_t num);
  int GetVringBase(uint32_t index, uint32_t* num);
  int SetVringAddr(uint32_t index, uint64_t desc, uint64_t used, uint64_t avail, uint64_t log);
  // fd < 0 sends the NOFD form.
  int SetVringFd(uint32_t request, uint32_t index, int fd);
  int SetMemTable(const std::vector<VhostUserMemoryRegion>& regions, int fd);
  int AddMemReg(const VhostUserMemoryRegion& region, int fd);
  int RemMemReg(const VhostUserMemoryRegion& region);
  // SET_SLAVE_REQ_FD with one end of a fresh socketpair (QEMU sends it when SLAVE_REQ is
  // negotiated; C virtiofsd offers it). We keep the other end and never read it.
  int SetSlaveReqFd();

 private:
  bool WantsAck(uint32_t request) const;
  int MaybeAck(uint32_t request, bool need_reply);
  void Trace(uint32_t request, const char* detail);
  int Fail(int rc, const std::string& what);

  UniqueFd fd_;
  UniqueFd slave_fd_;
  AckPolicy ack_policy_ = AckPolicy::kMemoryUpdates;
  bool reply_ack_ = false;
  int timeout_ms_ = 10000;
  std::vector<std::string> trace_;
  std::string last_error_;
};

}  // namespace nydus::driver::frontend
