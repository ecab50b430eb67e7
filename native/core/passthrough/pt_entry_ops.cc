// Directory entries: LOOKUP, FORGET, BATCH_FORGET, MKNOD, MKDIR, SYMLINK, LINK, UNLINK, RMDIR,
// RENAME, RENAME2. Every name is one plain component resolved under its parent's O_PATH fd
// (pt_host.h); creation runs with the caller's fsuid/fsgid and umask, so new entries get the
// owner, group and mode Linux would give them.
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "passthrough/pt_call.h"
#include "passthrough/pt_creds.h"

namespace nydus::passthrough {
namespace {

int Errno(int rc) { return rc == 0 ? 0 : -errno; }

}  // namespace

// LOOKUP: an entry with one new lookup reference, or ENOENT / ENOTDIR / EACCES / ELOOP (never:
// a symlink is a node of its own) / ENAMETOOLONG. "." is the directory itself and ".." its
// parent, clamped at the root: the kernel only sends them for NFS export, which we do not offer,
// so they are answered carefully rather than refused.
int PassthroughFs::DoLookup(Call& c) {
  if (c.req.out_bytes() < kEntryReply) return -EIO;
  auto parent = NodeOf(c.in.nodeid);
  if (parent == nullptr) return -ESTALE;
  if (HasSlash(c.a.name, c.a.name_len)) return -EINVAL;
  if (!parent->is_dir()) return -ENOTDIR;
  struct statx st;
  std::shared_ptr<Inode> node;
  const bool dot = c.a.name_len == 1 && c.a.name[0] == '.';
  const bool dotdot = c.a.name_len == 2 && c.a.name[0] == '.' && c.a.name[1] == '.';
  if (dot || (dotdot && parent->nodeid() == inodes_.root_id())) {
    int rc = StatFd(parent->fd(), &st);
    if (rc != 0) return rc;
    inodes_.Ref(parent);
    return ReplyEntry(c, parent, st);
  }
  if (dotdot) {
    // A directory's parent is known while the guest holds the directory (a dentry pins its
    // parent). One that is not known was moved by someone on the host, possibly out of the
    // share: it is not followed there.
    Fd up(openat(parent->fd(), "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!up.valid()) return -errno;
    int rc = StatFd(up.get(), &st);
    if (rc != 0) return rc;
    node = inodes_.RefKnown(KeyOf(st));
    if (node == nullptr) return -ENOENT;
    return ReplyEntry(c, node, st);
  }
  int rc = LookupChild(parent, c.a.name, &node, &st);
  if (rc != 0) return rc;
  return ReplyEntry(c, node, st);
}

// FORGET: no reply.
int PassthroughFs::DoForget(Call& c) {
  inodes_.Forget(c.in.nodeid, c.a.a.forget.nlookup);
  return 0;
}

// BATCH_FORGET: no reply. Entries for nodes outside this filesystem's slice are skipped (the
// session splits a batch that spans mounts and calls Forget() per entry instead).
int PassthroughFs::DoBatchForget(Call& c) {
  for (size_t i = 0; i < c.a.forgets_count; ++i) {
    fuse_forget_one f;
    std::memcpy(&f, &c.a.forgets[i], sizeof(f));
    if (inodes_.Owns(f.nodeid)) inodes_.Forget(f.nodeid, f.nlookup);
  }
  return 0;
}

// The entry just created as `name` under `parent`, with one lookup reference.
int PassthroughFs::FinishCreated(Call& c, const std::shared_ptr<Inode>& parent, const char* name,
                                 Fd reserved) {
  reserved.reset();
  std::shared_ptr<Inode> node;
  struct statx st;
  int rc = LookupChild(parent, name, &node, &st);
  if (rc != 0) return rc;
  return ReplyEntry(c, node, st);
}

int PassthroughFs::MakeEntry(Call& c, uint32_t umask, int (*make)(int dirfd, const OpArgs& a)) {
  if (c.req.out_bytes() < kEntryReply) return -EIO;
  auto parent = NodeOf(c.in.nodeid);
  if (parent == nullptr) return -ESTALE;
  if (!IsPlainName(c.a.name, c.a.name_len)) return -EINVAL;
  SetThreadUmask(umask);
  Fd reserved;
  int rc = ReserveFd(&reserved);
  if (rc != 0) return rc;
  if (make(parent->fd(), c.a) != 0) return -errno;
  return FinishCreated(c, parent, c.a.name, std::move(reserved));
}

// MKNOD: regular files, FIFOs, sockets and (for a privileged caller) device nodes; the node is
// created on the host but never opened there. EEXIST, EPERM, ENOSPC, EDQUOT as the host gives.
int PassthroughFs::DoMknod(Call& c) {
  return MakeEntry(c, c.a.a.mknod.umask, [](int dirfd, const OpArgs& a) {
    return mknodat(dirfd, a.name, a.a.mknod.mode, a.a.mknod.rdev);
  });
}

// MKDIR: EEXIST, ENOENT (parent removed), EMLINK, ENOSPC, EACCES.
int PassthroughFs::DoMkdir(Call& c) {
  return MakeEntry(c, c.a.a.mkdir.umask, [](int dirfd, const OpArgs& a) {
    return mkdirat(dirfd, a.name, a.a.mkdir.mode);
  });
}

// SYMLINK (entry name, then target): the target is stored as given and never resolved on the
// host; it may name anything, the guest resolves it in its own namespace. No umask applies.
int PassthroughFs::DoSymlink(Call& c) {
  return MakeEntry(c, 0,
                   [](int dirfd, const OpArgs& a) { return symlinkat(a.name2, dirfd, a.name); });
}

// LINK: the existing node with one more lookup reference. EXDEV when the node belongs to another
// filesystem of the session; from the host, in Linux's order: ENOENT / ENOTDIR / EEXIST for the
// new name first, then EPERM for a directory, EMLINK.
int PassthroughFs::DoLink(Call& c) {
  if (c.req.out_bytes() < kEntryReply) return -EIO;
  if (!inodes_.Owns(c.a.a.link.oldnodeid)) return -EXDEV;
  auto old = NodeOf(c.a.a.link.oldnodeid);
  auto parent = NodeOf(c.in.nodeid);
  if (old == nullptr || parent == nullptr) return -ESTALE;
  if (!IsPlainName(c.a.name, c.a.name_len)) return -EINVAL;
  // Through /proc with AT_SYMLINK_FOLLOW: links the inode the O_PATH fd holds (a symlink too),
  // with the caller's permission checks (fs.protected_hardlinks applies as on the host).
  ProcPath p(old->fd());
  if (linkat(AT_FDCWD, p.c_str(), parent->fd(), c.a.name, AT_SYMLINK_FOLLOW) != 0) return -errno;
  struct statx st;
  int rc = StatFd(old->fd(), &st);
  if (rc != 0) return rc;
  inodes_.Ref(old);
  return ReplyEntry(c, old, st);
}

// UNLINK: EISDIR for a directory (Linux's unlink), EACCES / EPERM (sticky), ENOENT. The node
// stays known until the kernel forgets it (open handles keep working).
int PassthroughFs::DoUnlink(Call& c) {
  auto parent = NodeOf(c.in.nodeid);
  if (parent == nullptr) return -ESTALE;
  if (!IsPlainName(c.a.name, c.a.name_len)) return -EINVAL;
  int rc = Errno(unlinkat(parent->fd(), c.a.name, 0));
  return rc != 0 ? rc : ReplyOk(c);
}

// RMDIR: ENOTEMPTY, ENOTDIR, EBUSY (a mount point), ENOENT.
int PassthroughFs::DoRmdir(Call& c) {
  auto parent = NodeOf(c.in.nodeid);
  if (parent == nullptr) return -ESTALE;
  if (!IsPlainName(c.a.name, c.a.name_len)) return -EINVAL;
  int rc = Errno(unlinkat(parent->fd(), c.a.name, AT_REMOVEDIR));
  return rc != 0 ? rc : ReplyOk(c);
}

int PassthroughFs::RenameCommon(Call& c, uint64_t newdir, uint32_t flags) {
  if (!inodes_.Owns(newdir)) return -EXDEV;
  auto from = NodeOf(c.in.nodeid);
  auto to = NodeOf(newdir);
  if (from == nullptr || to == nullptr) return -ESTALE;
  if (!IsPlainName(c.a.name, c.a.name_len) || !IsPlainName(c.a.name2, c.a.name2_len)) {
    return -EINVAL;
  }
  int rc = Errno(renameat2(from->fd(), c.a.name, to->fd(), c.a.name2, flags));
  return rc != 0 ? rc : ReplyOk(c);
}

// RENAME: EXDEV across filesystems (or host mounts inside the share), ENOTEMPTY, EISDIR,
// ENOTDIR, EINVAL (a directory into itself), EBUSY.
int PassthroughFs::DoRename(Call& c) { return RenameCommon(c, c.a.a.rename.newdir, 0); }

// RENAME2: flags RENAME_NOREPLACE (EEXIST), RENAME_EXCHANGE (ENOENT when the target is missing),
// RENAME_WHITEOUT (leaves a 0/0 character device; needs CAP_MKNOD, as on the host); unknown
// flags and invalid combinations are EINVAL from the host.
int PassthroughFs::DoRename2(Call& c) {
  return RenameCommon(c, c.a.a.rename2.newdir, c.a.a.rename2.flags);
}

}  // namespace nydus::passthrough
