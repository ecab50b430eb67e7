#include "passthrough/pt_creds.h"

#include <linux/capability.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"

namespace nydus::passthrough {
namespace {

struct ThreadState {
  bool fs_private = false;  // unshare(CLONE_FS) done
  bool fs_failed = false;
};

ThreadState& State() {
  thread_local ThreadState state;
  return state;
}

bool CapGet(__user_cap_data_struct data[2]) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capget, &hdr, data) == 0;
}

bool CapSet(__user_cap_data_struct data[2]) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capset, &hdr, data) == 0;
}

bool Effective(const __user_cap_data_struct data[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

long RawSetgroups(size_t n, const gid_t* list) { return syscall(SYS_setgroups, n, list); }

}  // namespace

bool CanSwitchCredentials() {
  __user_cap_data_struct data[2] = {};
  if (!CapGet(data)) return false;
  return Effective(data, CAP_SETUID) && Effective(data, CAP_SETGID);
}

CallerScope::CallerScope(uint32_t uid, uint32_t gid, bool enabled) {
  if (!enabled || (uid == 0 && gid == 0)) return;
  // FUSE requests carry no supplementary groups, so none may help a caller: the thread's are
  // dropped, for good (virtiofsd drops them for its whole process at start). Each setgroups
  // commits new credentials (~2.5 us here), which per request would double the cost of a switch;
  // the daemon's own work on this thread runs as root, whose rights do not depend on groups.
  // Checked every time (a cheap read): a glibc setgroups() elsewhere in the process would give
  // every thread its groups back.
  if (getgroups(0, nullptr) != 0 && RawSetgroups(0, nullptr) != 0) {
    error_ = -errno;
    return;
  }
  // The group first, as virtiofsd does. setfsuid/setfsgid report failure only by leaving the
  // value unchanged (a uid with no mapping in our user namespace, a lost capability): each switch
  // is read back, and a request that cannot run as its caller fails instead of running as root.
  prev_gid_ = static_cast<int>(syscall(SYS_setfsgid, gid));
  if (static_cast<uint32_t>(syscall(SYS_setfsgid, -1)) != gid) {
    syscall(SYS_setfsgid, prev_gid_);
    error_ = -EPERM;
    return;
  }
  prev_uid_ = static_cast<int>(syscall(SYS_setfsuid, uid));
  if (static_cast<uint32_t>(syscall(SYS_setfsuid, -1)) != uid) {
    syscall(SYS_setfsuid, prev_uid_);
    syscall(SYS_setfsgid, prev_gid_);
    error_ = -EPERM;
    return;
  }
  switched_ = true;
}

CallerScope::~CallerScope() {
  if (!switched_) return;
  syscall(SYS_setfsuid, prev_uid_);
  syscall(SYS_setfsgid, prev_gid_);
}

DropFsetidScope::DropFsetidScope(bool enabled) {
  if (!enabled) return;
  __user_cap_data_struct data[2] = {};
  if (!CapGet(data) || !Effective(data, CAP_FSETID)) return;
  saved_effective_[0] = data[0].effective;
  saved_effective_[1] = data[1].effective;
  data[CAP_FSETID / 32].effective &= ~(1u << (CAP_FSETID % 32));
  dropped_ = CapSet(data);
}

DropFsetidScope::~DropFsetidScope() {
  if (!dropped_) return;
  __user_cap_data_struct data[2] = {};
  if (!CapGet(data)) return;
  data[0].effective = saved_effective_[0];
  data[1].effective = saved_effective_[1];
  if (!CapSet(data)) NLOG_ERROR("passthrough", "restoring CAP_FSETID failed: errno %d", errno);
}

int SetThreadUmask(uint32_t mask) {
  ThreadState& ts = State();
  if (!ts.fs_private) {
    if (ts.fs_failed) return -EPERM;
    if (unshare(CLONE_FS) != 0) {
      ts.fs_failed = true;
      NLOG_WARN("passthrough", "unshare(CLONE_FS) failed (errno %d): the process umask applies",
                errno);
      return -EPERM;
    }
    ts.fs_private = true;
  }
  // Set every time (one cheap syscall): caching the value would go stale if anything else on
  // this thread called umask().
  ::umask(static_cast<mode_t>(mask & 0777));
  return 0;
}

}  // namespace nydus::passthrough
