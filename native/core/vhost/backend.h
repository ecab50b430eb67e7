// The vhost-user virtio-fs backend: a Unix socket that one frontend at a time (QEMU
// `vhost-user-fs-pci`, cloud-hypervisor `--fs`) connects to, a control thread that speaks the
// vhost-user protocol on it, and one worker thread per started virtqueue (hiprio + N request
// queues) that turns descriptor chains into transport::FuseRequests for the sink.
//
// Neighbours: transport/request.h is the seam to the FUSE session (the sink); device.h holds the
// protocol state machine, vring.h the queue workers, guest_memory.h the memory table. Nothing here
// parses FUSE.
//
// Failure policy (reference §1.5: QEMU 7.2 has no reconnect for vhost-user-fs, a dead backend
// hangs the guest): never exit on bad input. A malformed chain fails that request, a ring the
// driver broke stops being processed, a malformed vhost-user message closes the connection; after
// any disconnect all device state is dropped, the sink gets OnSessionReset(), and the backend
// listens again so a new frontend process can attach to the same daemon.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "transport/request.h"
#include "vhost/stats.h"

namespace nydus::vhost {

class VhostUserFsDevice;

// Why ServeConnection returned.
enum class ServeEnd : uint8_t {
  kClosed,         // the frontend closed the connection
  kProtocolError,  // malformed message (size, fds, framing): the connection must be closed
  kRefused,        // a request the device cannot answer: the connection must be closed
  kError,          // socket error
  kStopped,        // stop_fd became readable
};

// Reads, checks, handles and answers vhost-user messages on `conn` until one of the ServeEnd
// conditions. The backend's control thread runs it per accepted connection; tests run it on one
// end of a socketpair. stop_fd may be -1.
ServeEnd ServeConnection(VhostUserFsDevice* device, int conn, int stop_fd,
                         BackendCounters* counters);

struct BackendOptions {
  std::string socket_path;  // bind + listen here (a stale socket file is removed first)
  int listen_fd = -1;       // or an already-listening AF_UNIX socket (takes precedence; not closed)
  uint32_t num_request_queues = 1;  // request queues (hiprio is extra); nydusd's default is 1
  uint32_t max_queue_size = 1024;
  // Bound on waiting for in-flight requests when QEMU stops a ring (GET_VRING_BASE).
  std::chrono::milliseconds stop_drain{2000};
};

class VhostUserFsBackend {
 public:
  // `sink` must outlive the backend (or at least Stop()).
  VhostUserFsBackend(BackendOptions options, transport::FuseRequestSink* sink);
  ~VhostUserFsBackend();  // Stop()
  VhostUserFsBackend(const VhostUserFsBackend&) = delete;
  VhostUserFsBackend& operator=(const VhostUserFsBackend&) = delete;

  // Listens and starts the control thread. Returns 0 or -errno with *error set.
  int Start(std::string* error);
  // Closes the connection and the socket and joins every thread. Requests completed afterwards
  // are dropped safely. Idempotent.
  void Stop();

  BackendStats GetStats() const { return counters_->Snapshot(); }
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  // The socket path actually listened on ("" for an inherited fd).
  const std::string& socket_path() const { return options_.socket_path; }

 private:
  void ControlMain();
  // Serves one accepted connection until it ends; returns when the frontend disconnected, broke
  // the protocol, or Stop() was called.
  void Serve(int conn);

  const BackendOptions options_;
  transport::FuseRequestSink* const sink_;
  std::shared_ptr<BackendCounters> counters_;
  std::unique_ptr<VhostUserFsDevice> device_;  // used by the control thread only
  UniqueFd listen_fd_;                         // owned unless inherited
  bool owns_listen_fd_ = false;
  bool created_socket_file_ = false;
  UniqueFd stop_fd_;  // eventfd that wakes the control thread
  std::thread control_;
  // ORDERING: status flags only (relaxed reads for connected(), seq_cst otherwise); the stop
  // request itself travels through stop_fd_ and conn_mu_.
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::mutex conn_mu_;
  int conn_fd_ = -1;  // conn_mu_: the live connection, so Stop() can shut it down
};

}  // namespace nydus::vhost
