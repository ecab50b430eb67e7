// File locks of the passthrough filesystem (GETLK, SETLK, SETLKW, and FLOCK, which is SETLK(W)
// with FUSE_LK_FLOCK).
//
// The kernel names a lock owner per request: for POSIX locks the guest process (its files
// table), for flock the open file. Each (node, owner) gets its own host open file description
// (LockOwners), and locks are taken on it as open-file-description locks (F_OFD_SETLK) or flock,
// so guest owners conflict with each other and with host processes exactly as separate owners
// do on the host, while one owner's own locks merge and split as POSIX says. FLUSH (a close by
// the owning process) drops that owner's POSIX locks; RELEASE with FUSE_RELEASE_FLOCK_UNLOCK
// drops the file's flock.
//
// SETLKW never blocks a queue thread: after one failed non-blocking attempt the request is
// parked with the LockWaiter, whose thread retries every parked lock with a short backoff (and
// at once when a lock is released here) until it is granted, interrupted (FUSE_INTERRUPT:
// EINTR), or the filesystem resets (EIO). Not done: POSIX deadlock detection (EDEADLK) and
// fairness between waiters; a deadlocked pair waits until one of them is interrupted.
//
// Threading: LockOwners::mu_ guards its maps; LockWaiter::mu_ guards its list and stop flag.
// The waiter thread is started on the first parked request and joined by the destructor.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "passthrough/pt_host.h"

namespace nydus::passthrough {

// One lock owner's host descriptor. Shared with a parked SETLKW, so an owner dropped while one of
// its locks is still wanted keeps its descriptor until the waiter lets go.
struct OwnerFd {
  Fd fd;
};

class LockOwners {
 public:
  // The owner's descriptor, opened (read-write when the host allows, else read-only) from the
  // node's O_PATH fd on first use. 0 and *out, or -errno.
  int Get(int opath_fd, uint64_t owner, bool flock, std::shared_ptr<OwnerFd>* out);
  // Drops an owner: its locks go with the descriptor. Returns true when it existed.
  bool DropPosix(uint64_t owner);
  bool DropFlock(uint64_t owner);
  size_t size() const;

 private:
  using Map = std::unordered_map<uint64_t, std::shared_ptr<OwnerFd>>;
  bool Drop(Map* map, uint64_t owner);

  mutable std::mutex mu_;
  Map posix_;  // guarded by mu_
  Map flock_;  // guarded by mu_
};

class LockWaiter {
 public:
  // One more try: 0 granted, -EAGAIN still held by someone else, another -errno to give up.
  using Attempt = std::function<int()>;
  // Called exactly once with 0 or an errno (on the waiter thread, or on the thread calling
  // Interrupt/FailAll/the destructor).
  using Done = std::function<void(int err)>;

  LockWaiter() = default;
  ~LockWaiter();
  LockWaiter(const LockWaiter&) = delete;
  LockWaiter& operator=(const LockWaiter&) = delete;

  void Add(uint64_t unique, Attempt attempt, Done done);
  // Ends the wait of request `unique` with EINTR. False when no such wait exists.
  bool Interrupt(uint64_t unique);
  // A lock was released here: retry the parked ones now.
  void Poke();
  // Ends every wait with `err`.
  void FailAll(int err);
  // Joins the thread and ends every wait with EIO; later Adds end with EIO at once.
  void Stop();
  size_t size() const;

 private:
  struct Wait {
    uint64_t unique;
    Attempt attempt;
    Done done;
  };
  void Loop();
  static constexpr size_t kMaxInterrupted = 64;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Wait> waits_;  // guarded by mu_
  bool stop_ = false;        // guarded by mu_
  bool poked_ = false;       // guarded by mu_
  // INTERRUPTs that found no parked wait (the request may be between its first attempt and
  // Add, or out for a retry): the wait ends with EINTR when it shows up. The newest 64 kept.
  std::vector<uint64_t> interrupted_;  // guarded by mu_
  std::thread thread_;  // started under mu_ by the first Add, joined by the destructor
};

}  // namespace nydus::passthrough
