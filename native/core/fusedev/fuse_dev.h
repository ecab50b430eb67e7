// The /dev/fuse transport (vhost-user-fs.md §5.2-5.4): worker threads read requests from the
// session fd (or clones of it) and hand them to a FuseRequestSink, the same session and routing
// that serve virtio-fs.
//
// Each worker owns one fd: the mount's fd for the first, a FUSE_DEV_IOC_CLONE clone (dup() when
// cloning is refused) for the others, so replies go back through the fd their request came from.
// Workers wait in epoll on their fd (exclusively: one request wakes one worker) and a stop eventfd;
// fds are non-blocking so a worker that lost the race for a request goes back to waiting instead
// of blocking in read(), where Stop() could not wake it. A read buffer of
// max_write + 4 KiB per worker satisfies the kernel's minimum (header + write_in + max_write).
//
// Requests: the readable bytes are the worker's buffer and are valid only during OnRequest (the
// session copies what it keeps, fuse/decode.h). The reply space is the request's own buffer
// (max_write + 4 KiB, mmapped, so only the pages a reply touches cost memory), written to the fd
// with one write() at Complete(). A Complete() after Stop() is a no-op: the fd is gone and the
// kernel has failed the request already.
//
// Read errors: ENOENT (request interrupted before we read it), EINTR and EAGAIN retry; ENODEV
// (unmounted or aborted) ends the workers and fires the closed callback once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "abi/js_abi.h"
#include "transport/request.h"

namespace nydus::fusedev {

struct FuseDevOptions {
  uint32_t threads = 4;  // upstream nydusd --fuse-threads default
  uint32_t max_write = 1u << 20;
};

// The counters are NYDUS_ABI_FUSEDEV_STATS (abi/js_abi.h), which also names them for TypeScript.
struct FuseDevStats {
  NYDUS_ABI_FUSEDEV_STATS(NYDUS_ABI_STAT_FIELD)
  bool closed = false;
};

class FuseDevTransport {
 public:
  FuseDevTransport(transport::FuseRequestSink* sink, FuseDevOptions options);
  ~FuseDevTransport();
  FuseDevTransport(const FuseDevTransport&) = delete;
  FuseDevTransport& operator=(const FuseDevTransport&) = delete;

  // Called once, on a worker thread, when the kernel ends the session (ENODEV) or a worker hits
  // an unexpected read error; not called for Stop(). Set before Start().
  void set_on_closed(std::function<void(int err)> fn) { on_closed_ = std::move(fn); }

  // Takes ownership of `fd` (also on failure) and starts the workers. 0 or -errno.
  int Start(int fd, std::string* error);
  // Wakes and joins the workers, then closes every fd (which aborts the kernel connection when
  // it is still mounted). Idempotent.
  void Stop();

  FuseDevStats GetStats() const;
  // A new fd (close-on-exec) on the session, for notifications (notify.h); -1 when stopped.
  int DupFd() const;

  struct Channel;
  struct Pool;

 private:
  void WorkerLoop(std::shared_ptr<Channel> channel);
  void Closed(int err);

  transport::FuseRequestSink* const sink_;
  FuseDevOptions options_;
  std::function<void(int)> on_closed_;
  int stop_fd_ = -1;
  std::vector<std::shared_ptr<Channel>> channels_;  // owned by the starting/stopping thread
  std::vector<std::thread> workers_;                // same
  std::shared_ptr<Pool> pool_;
  // ORDERING: closed_ is an exchange so the closed callback fires once; stopped_ is set (release)
  // before the stop eventfd is written and read (acquire) by workers after waking, so a worker
  // woken by Stop() never treats the wakeup as a kernel-side close.
  std::atomic<bool> closed_{false};
  std::atomic<bool> stopped_{false};
  // Relaxed counters.
  mutable std::atomic<uint64_t> requests_{0}, bytes_read_{0};
};

}  // namespace nydus::fusedev
