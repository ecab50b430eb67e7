// Locks: GETLK, SETLK, SETLKW (POSIX record locks, or flock with FUSE_LK_FLOCK). See pt_locks.h
// for the owner model and how SETLKW waits without blocking a queue thread.
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "fuse/reply.h"
#include "passthrough/pt_call.h"
#include "passthrough/pt_locks.h"

namespace nydus::passthrough {
namespace {

// FUSE's lock range is [start, end] inclusive, end OFFSET_MAX meaning "to the end of the file";
// struct flock has start + length, 0 meaning the same. EINVAL for a range Linux would refuse.
int ToFlock(const fuse_file_lock& lk, struct flock* fl) {
  if (lk.type != F_RDLCK && lk.type != F_WRLCK && lk.type != F_UNLCK) return -EINVAL;
  if (lk.start > static_cast<uint64_t>(LLONG_MAX) || lk.end > static_cast<uint64_t>(LLONG_MAX) ||
      lk.start > lk.end) {
    return -EINVAL;
  }
  std::memset(fl, 0, sizeof(*fl));
  fl->l_type = static_cast<short>(lk.type);
  fl->l_whence = SEEK_SET;
  fl->l_start = static_cast<off_t>(lk.start);
  fl->l_len =
      lk.end == static_cast<uint64_t>(LLONG_MAX) ? 0 : static_cast<off_t>(lk.end - lk.start + 1);
  fl->l_pid = 0;  // required by F_OFD_*
  return 0;
}

void FromFlock(const struct flock& fl, fuse_file_lock* lk) {
  lk->type = static_cast<uint32_t>(fl.l_type);
  lk->start = static_cast<uint64_t>(fl.l_start);
  lk->end = fl.l_len == 0 ? static_cast<uint64_t>(LLONG_MAX)
                          : static_cast<uint64_t>(fl.l_start + fl.l_len - 1);
  // The holder may be a host process or another guest owner: no pid the guest could use.
  lk->pid = 0;
}

}  // namespace

// GETLK: the first lock that would conflict with the request, or type F_UNLCK. EINVAL for a bad
// range or type and for flock (which has no GETLK).
int PassthroughFs::DoGetlk(Call& c) {
  const fuse_lk_in& in = c.a.a.lk;
  if ((in.lk_flags & FUSE_LK_FLOCK) != 0) return -EINVAL;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (!node->is_reg() && !node->is_dir()) return -EINVAL;
  struct flock fl;
  int rc = ToFlock(in.lk, &fl);
  if (rc != 0) return rc;
  std::shared_ptr<OwnerFd> owner;
  rc = node->locks().Get(node->fd(), in.owner, false, &owner);
  if (rc != 0) return rc;
  if (fcntl(owner->fd.get(), F_OFD_GETLK, &fl) != 0) return -errno;
  fuse_lk_out out{};
  FromFlock(fl, &out.lk);
  return Reply(c, &out, sizeof(out));
}

// SETLK: granted, or EAGAIN while another owner (guest or host) holds a conflicting lock.
// EBADF for a write lock on a file the host could only open for reading.
int PassthroughFs::DoSetlk(Call& c) { return SetlkCommon(c, false); }

// SETLKW: granted, possibly later (the request is deferred, see pt_locks.h); EINTR when the
// kernel interrupts the wait, EIO when the session resets.
int PassthroughFs::DoSetlkw(Call& c) { return SetlkCommon(c, true); }

int PassthroughFs::SetlkCommon(Call& c, bool wait) {
  const fuse_lk_in& in = c.a.a.lk;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (!node->is_reg() && !node->is_dir()) return -EINVAL;
  const bool is_flock = (in.lk_flags & FUSE_LK_FLOCK) != 0;
  struct flock fl;
  int rc = ToFlock(in.lk, &fl);
  if (rc != 0) return rc;
  std::shared_ptr<OwnerFd> owner;
  rc = node->locks().Get(node->fd(), in.owner, is_flock, &owner);
  if (rc != 0) return rc;

  LockWaiter::Attempt attempt;
  if (is_flock) {
    const int op = fl.l_type == F_RDLCK ? LOCK_SH : fl.l_type == F_WRLCK ? LOCK_EX : LOCK_UN;
    attempt = [owner, op] {
      return flock(owner->fd.get(), op | LOCK_NB) == 0 ? 0
                                                       : (errno == EWOULDBLOCK ? -EAGAIN : -errno);
    };
  } else {
    attempt = [owner, fl]() mutable {
      return fcntl(owner->fd.get(), F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
    };
  }
  rc = attempt();
  if (rc == 0) {
    if (fl.l_type == F_UNLCK) lock_waiter_.Poke();
    return ReplyOk(c);
  }
  if (!wait || (rc != -EAGAIN && rc != -EACCES)) return rc;
  // Parked: the waiter answers this request later; nothing of `c` outlives this call.
  transport::FuseRequest* req = &c.req;
  const uint64_t unique = c.in.unique;
  c.deferred = true;
  lock_waiter_.Add(unique, std::move(attempt),
                   [this, req, unique, node](int err) { CompleteDeferred(req, unique, err); });
  return 0;
}

void PassthroughFs::CompleteDeferred(transport::FuseRequest* req, uint64_t unique, int err) {
  const uint32_t written =
      err == 0 ? fuse::WriteReply(*req, unique, nullptr, 0) : fuse::WriteError(*req, unique, err);
  if (err != 0) errors_.fetch_add(1, std::memory_order_relaxed);
  complete_(req, written, err != 0);
}

}  // namespace nydus::passthrough
