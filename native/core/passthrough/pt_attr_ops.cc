// Attributes and extended attributes: GETATTR, SETATTR, READLINK, ACCESS, STATFS, SETXATTR,
// GETXATTR, LISTXATTR, REMOVEXATTR. They act on the node's own inode: through a file handle's
// descriptor when the kernel names one, else through the O_PATH fd (fchownat AT_EMPTY_PATH,
// readlinkat "") or its /proc/self/fd entry (chmod, truncate, utimensat, xattrs), which never
// resolves anything but that inode.
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <vector>

#include "passthrough/pt_call.h"
#include "passthrough/pt_creds.h"

namespace nydus::passthrough {
namespace {

std::vector<uint8_t>& Scratch(size_t n) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

timespec TimeArg(uint32_t valid, uint32_t set_bit, uint32_t now_bit, uint64_t sec, uint32_t nsec) {
  if ((valid & set_bit) == 0) return timespec{0, UTIME_OMIT};
  if ((valid & now_bit) != 0) return timespec{0, UTIME_NOW};
  return timespec{static_cast<time_t>(sec), static_cast<long>(nsec)};
}

// utimensat on the handle, the symlink itself, or the node's /proc/self/fd entry; 0 or -errno.
int SetTimes(int fd, const Inode& node, const ProcPath& path, const timespec ts[2]) {
  int rc;
  if (fd >= 0) {
    rc = futimens(fd, ts);
  } else if (node.is_symlink()) {
    rc = utimensat(node.fd(), "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  } else {
    rc = utimensat(AT_FDCWD, path.c_str(), ts, 0);
  }
  return rc != 0 ? -errno : 0;
}

}  // namespace

// GETATTR: the node's attributes (the handle, when given, names the same inode).
int PassthroughFs::DoGetattr(Call& c) {
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  return ReplyAttr(c, node->fd());
}

// SETATTR, in the order Linux's chmod/chown/truncate/utimensat would be called: mode, owner,
// size, times; the first failure is the answer (EPERM, EACCES, EFBIG, EISDIR, EINVAL, EROFS).
// FATTR_FH uses the handle's descriptor, so ftruncate on a file opened for writing works after
// its mode changed, as on Linux. UTIME_NOW for FATTR_ATIME_NOW / FATTR_MTIME_NOW.
// FATTR_KILL_SUIDGID (a truncate by a writer without CAP_FSETID) lets the host clear the bits.
int PassthroughFs::DoSetattr(Call& c) {
  const fuse_setattr_in& s = c.a.a.setattr;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  std::shared_ptr<OpenFile> file;
  int fd = -1;
  if ((s.valid & FATTR_FH) != 0 && s.fh != 0) {
    int rc = FileOf(s.fh, c.in.nodeid, &file);
    if (rc != 0) return rc;
    fd = file->fd();
  }
  const ProcPath path(node->fd());

  if ((s.valid & FATTR_MODE) != 0) {
    int rc = fd >= 0 ? fchmod(fd, s.mode & 07777) : chmod(path.c_str(), s.mode & 07777);
    if (rc != 0) return -errno;
  }
  if ((s.valid & (FATTR_UID | FATTR_GID)) != 0) {
    const uid_t uid = (s.valid & FATTR_UID) != 0 ? s.uid : static_cast<uid_t>(-1);
    const gid_t gid = (s.valid & FATTR_GID) != 0 ? s.gid : static_cast<gid_t>(-1);
    int rc = fd >= 0 ? fchown(fd, uid, gid)
                     : fchownat(node->fd(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    if (rc != 0) return -errno;
  }
  if ((s.valid & FATTR_SIZE) != 0) {
    if (s.size > static_cast<uint64_t>(LLONG_MAX)) return -EINVAL;
    DropFsetidScope kill((s.valid & FATTR_KILL_SUIDGID) != 0);
    int rc;
    if (fd >= 0) {
      rc = ftruncate(fd, static_cast<off_t>(s.size));
    } else if (node->is_dir()) {
      return -EISDIR;
    } else if (!node->is_reg()) {
      return -EINVAL;
    } else {
      // truncate(2) checks write permission as the caller and never opens the file.
      rc = truncate(path.c_str(), static_cast<off_t>(s.size));
    }
    if (rc != 0) return -errno;
  }
  if ((s.valid & (FATTR_ATIME | FATTR_MTIME)) != 0) {
    const timespec ts[2] = {TimeArg(s.valid, FATTR_ATIME, FATTR_ATIME_NOW, s.atime, s.atimensec),
                            TimeArg(s.valid, FATTR_MTIME, FATTR_MTIME_NOW, s.mtime, s.mtimensec)};
    int rc = SetTimes(fd, *node, path, ts);
    // A touch (utimensat with NULL times) is allowed to any writer, but a guest kernel with the
    // writeback cache sends it as ATIME_NOW plus its own mtime (it trusts its local cmtime),
    // which the host refuses to a non-owner. Retried as the touch it was: both now, which the
    // host grants only to a writer (else EACCES, Linux's answer to such a touch). No extra
    // power: the times become the host's now, never a value the guest chose.
    if (rc == -EPERM && (s.valid & FATTR_ATIME_NOW) != 0 && (s.valid & FATTR_MTIME) != 0 &&
        (s.valid & FATTR_MTIME_NOW) == 0) {
      const timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
      rc = SetTimes(fd, *node, path, now);
    }
    if (rc != 0) return rc;
  }
  return ReplyAttr(c, node->fd());
}

// READLINK: the target bytes (no NUL); EINVAL when the node is not a symlink.
int PassthroughFs::DoReadlink(Call& c) {
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (!node->is_symlink()) return -EINVAL;
  auto& buf = Scratch(PATH_MAX);
  ssize_t n = readlinkat(node->fd(), "", reinterpret_cast<char*>(buf.data()), PATH_MAX);
  if (n < 0) return -errno;
  return Reply(c, buf.data(), static_cast<size_t>(n));
}

// ACCESS: the host's answer for the caller's fsuid/fsgid (AT_EACCESS uses them).
int PassthroughFs::DoAccess(Call& c) {
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  const int mask = static_cast<int>(c.a.a.access.mask & (R_OK | W_OK | X_OK));
  const ProcPath path(node->fd());
  if (faccessat(AT_FDCWD, path.c_str(), mask, AT_EACCESS) != 0) return -errno;
  return ReplyOk(c);
}

// STATFS: the host file system holding the node.
int PassthroughFs::DoStatfs(Call& c) {
  auto node = NodeOf(c.in.nodeid == 0 ? inodes_.root_id() : c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  struct statfs sf;
  if (fstatfs(node->fd(), &sf) != 0) return -errno;
  fuse_statfs_out out{};
  out.st.blocks = sf.f_blocks;
  out.st.bfree = sf.f_bfree;
  out.st.bavail = sf.f_bavail;
  out.st.files = sf.f_files;
  out.st.ffree = sf.f_ffree;
  out.st.bsize = static_cast<uint32_t>(sf.f_bsize);
  out.st.namelen = static_cast<uint32_t>(sf.f_namelen);
  out.st.frsize = static_cast<uint32_t>(sf.f_frsize);
  return Reply(c, &out, sizeof(out));
}

// SETXATTR: XATTR_CREATE (EEXIST) / XATTR_REPLACE (ENODATA), E2BIG, ENOSPC, EPERM (user.* on a
// symlink or device, trusted.* without privilege), ENOTSUP. POSIX ACLs (system.posix_acl_*) are
// stored by the host, which also updates the mode; FUSE_SETXATTR_ACL_KILL_SGID clears SGID the
// way Linux does for a caller outside the group.
int PassthroughFs::DoSetxattr(Call& c) {
  if (!options_.xattr) return -ENOSYS;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  const bool ext = setxattr_ext_.load(std::memory_order_relaxed);
  DropFsetidScope kill(ext && (c.a.a.setxattr.setxattr_flags & FUSE_SETXATTR_ACL_KILL_SGID) != 0);
  const ProcPath path(node->fd());
  const int flags = static_cast<int>(c.a.a.setxattr.flags & (XATTR_CREATE | XATTR_REPLACE));
  if (setxattr(path.c_str(), c.a.name, c.a.value, c.a.value_len, flags) != 0) return -errno;
  return ReplyOk(c);
}

// GETXATTR / LISTXATTR: a size probe (size 0) gets fuse_getxattr_out, otherwise the bytes
// (the value, or the NUL-terminated names); ERANGE when they do not fit `size` (the host says
// so), ENODATA for a missing attribute.
int PassthroughFs::DoGetxattr(Call& c) { return ReadXattr(c, false); }

int PassthroughFs::DoListxattr(Call& c) { return ReadXattr(c, true); }

int PassthroughFs::ReadXattr(Call& c, bool list) {
  if (!options_.xattr) return -ENOSYS;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (!list && c.a.name_len > kMaxXattrName) return -ERANGE;
  const ProcPath path(node->fd());
  const uint32_t size = c.a.a.getxattr.size;
  const size_t cap = size < kMaxXattrValue ? size : kMaxXattrValue;
  auto& buf = Scratch(cap == 0 ? 1 : cap);
  void* into = size == 0 ? nullptr : buf.data();
  const ssize_t got = list ? listxattr(path.c_str(), static_cast<char*>(into), cap)
                           : getxattr(path.c_str(), c.a.name, into, cap);
  if (got < 0) return -errno;
  if (size == 0) {
    fuse_getxattr_out out{};
    out.size = static_cast<uint32_t>(got);
    return Reply(c, &out, sizeof(out));
  }
  return Reply(c, buf.data(), static_cast<size_t>(got));
}

// REMOVEXATTR: ENODATA when absent.
int PassthroughFs::DoRemovexattr(Call& c) {
  if (!options_.xattr) return -ENOSYS;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (c.a.name_len > kMaxXattrName) return -ERANGE;
  const ProcPath path(node->fd());
  if (removexattr(path.c_str(), c.a.name) != 0) return -errno;
  return ReplyOk(c);
}

}  // namespace nydus::passthrough
