// Host-side primitives of the passthrough filesystem: owned file descriptors, the only ways it
// resolves a guest name on the host, and the conversion of host attributes to FUSE's.
//
// Containment rules (issue 12): a guest name is always one path component (no '/', never "." or
// ".." except where LOOKUP handles them explicitly) resolved relative to a directory fd that is
// already inside the share; the final component is never followed if it is a symlink
// (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, O_NOFOLLOW, AT_SYMLINK_NOFOLLOW); an inode is
// reopened for I/O through its own O_PATH descriptor's /proc/self/fd entry, which names that
// inode and nothing else, so a path swapped in between check and use is never looked at.
#pragma once

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "common/unique_fd.h"

namespace nydus::passthrough {

// An owned file descriptor (-1 when empty), the one the vhost layer uses.
using Fd = UniqueFd;

// "/proc/self/fd/N" for an fd, built without allocation. Following it (open, chmod, getxattr,
// truncate, utimensat without AT_SYMLINK_NOFOLLOW) reaches the inode the fd refers to, even for
// an O_PATH fd of a symlink, where the l* variants would act on the /proc link itself.
class ProcPath {
 public:
  explicit ProcPath(int fd);
  const char* c_str() const { return buf_; }

 private:
  char buf_[32];
};

// True when `name` (len bytes, no NUL inside: the decoder guarantees it) is one safe path
// component: not "." or "..", no '/'.
bool IsPlainName(const char* name, size_t len);
// True when the name contains '/' (never a valid component of any request).
bool HasSlash(const char* name, size_t len);

// Opens `name` (one component) under `dirfd` without following a final symlink and without
// leaving `dirfd`'s tree (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; plain openat with
// O_NOFOLLOW on kernels before 5.6). Returns the fd or -errno.
int OpenBeneath(int dirfd, const char* name, int flags, mode_t mode = 0);

// Reopens the inode behind an O_PATH fd with `flags` (O_CLOEXEC added, O_CREAT/O_EXCL/O_NOCTTY/
// O_PATH/O_TMPFILE removed). The caller has checked the inode's type. Returns the fd or -errno.
int ReopenInode(int opath_fd, int flags);

// statx of the inode behind `fd` (never following a symlink) with the mount id. 0 or -errno.
int StatFd(int fd, struct statx* st);

// Host statx -> FUSE attributes. The guest sees host inode numbers (stable across FORGET, so
// tools that compare st_ino over time, such as git and tar, see hard links and unchanged files).
void AttrFromStatx(const struct statx& st, fuse_attr* out);

// Nanoseconds -> FUSE's seconds + nanoseconds pair.
inline void SplitNs(uint64_t ns, uint64_t* sec, uint32_t* nsec) {
  *sec = ns / 1000000000u;
  *nsec = static_cast<uint32_t>(ns % 1000000000u);
}

}  // namespace nydus::passthrough
