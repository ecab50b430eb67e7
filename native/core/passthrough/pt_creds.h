// Per-thread credentials for passthrough requests.
//
// Host permission checks run as the guest's caller, as virtiofsd does: the worker thread's
// fsuid/fsgid become the request's uid/gid, then are restored. Both are per-thread in Linux
// (setfsuid/setfsgid are not broadcast to other threads by glibc). Moving fsuid away from 0
// drops the file-system capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, ...) from the
// thread's effective set; moving it back to 0 raises them again from the permitted set.
// Supplementary groups: FUSE requests do not carry them, so the first switch on a thread drops
// that thread's supplementary groups for good (the raw setgroups syscall: glibc's setgroups()
// would change every thread of the process); virtiofsd drops them for its whole process.
// Cost measured on the dev VM: each credential change commits new creds, ~2.5 us; a switch and
// its restore are four of them (~10 us per request from a non-root caller).
//
// A root caller (uid 0, gid 0) runs with the daemon's own credentials: no syscalls. A daemon
// without CAP_SETUID/CAP_SETGID cannot impersonate anyone; it then serves every request with
// its own credentials (CanSwitchCredentials() tells the owner, who logs it once).
//
// The umask: file creation must not apply the daemon's umask (Node's, usually 022) to a mode the
// guest already masked. The first creating request on a thread unshares that thread's
// fs_struct (cwd, root, umask: unshare(CLONE_FS)) so it can set the request's umask without
// touching the rest of the process; threads that run passthrough requests must therefore not
// rely on sharing the process's cwd (the FUSE session's threads work on fds only).
#pragma once

#include <cstdint>

namespace nydus::passthrough {

// True when this process may switch fsuid/fsgid and groups (CAP_SETUID and CAP_SETGID are in
// the effective set).
bool CanSwitchCredentials();

// Switches the calling thread to the caller's credentials for its lifetime. Not movable; must be
// destroyed on the thread that made it.
class CallerScope {
 public:
  CallerScope(uint32_t uid, uint32_t gid, bool enabled);
  ~CallerScope();
  CallerScope(const CallerScope&) = delete;
  CallerScope& operator=(const CallerScope&) = delete;

  // 0, or -errno when the switch failed (the request must then fail with that errno): EPERM when
  // the kernel kept the old fsuid/fsgid (no mapping for the id in our user namespace).
  int error() const { return error_; }

 private:
  bool switched_ = false;
  int error_ = 0;
  int prev_uid_ = 0;
  int prev_gid_ = 0;
};

// Removes CAP_FSETID from the calling thread's effective set for its lifetime, so the kernel
// clears set-user-ID and set-group-ID bits on write, truncate and chown exactly as it does for
// an unprivileged writer (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID,
// FUSE_SETXATTR_ACL_KILL_SGID). A no-op when `enabled` is false or the capability is not there.
class DropFsetidScope {
 public:
  explicit DropFsetidScope(bool enabled);
  ~DropFsetidScope();
  DropFsetidScope(const DropFsetidScope&) = delete;
  DropFsetidScope& operator=(const DropFsetidScope&) = delete;

 private:
  bool dropped_ = false;
  uint32_t saved_effective_[2] = {0, 0};
};

// Sets the calling thread's umask (after unsharing its fs_struct the first time). Returns 0, or
// -errno when the thread could not get a private umask (the process umask then applies).
int SetThreadUmask(uint32_t mask);

}  // namespace nydus::passthrough
