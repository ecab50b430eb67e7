// Files: OPEN, CREATE, TMPFILE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK,
// COPY_FILE_RANGE, SYNCFS. READ and WRITE move data between the request's guest slices and the
// host descriptor with preadv/pwritev on iovecs over those slices: no bounce buffer.
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <span>

#include "fuse/reply.h"
#include "passthrough/pt_call.h"
#include "passthrough/pt_creds.h"
#include "passthrough/pt_locks.h"

namespace nydus::passthrough {
namespace {

// IOV_MAX: a request with more slices than this is moved in several calls.
constexpr int kIovMax = 1024;
// Linux caps one read/write/copy at MAX_RW_COUNT; FUSE's write_out.size is 32 bits.
constexpr uint64_t kMaxRwCount = 0x7ffff000;

// Moves up to n bytes between `fd` at `offset` and [pos, pos + n) of `slices`: preadv into
// them (to_slices) or pwritev from them, IOV_MAX slices per call, no copy in between. Stops at
// a short transfer (end of file, full disk). Returns the bytes moved, or -errno when an error
// came before any byte moved (after some bytes, the count: the kernel asks again for the rest).
long MoveData(int fd, std::span<const transport::IoSlice> slices, size_t pos, size_t n,
              uint64_t offset, bool to_slices) {
  thread_local struct iovec iov[kIovMax];
  size_t done = 0;
  while (done < n) {
    size_t covered = 0;
    int count = SliceIovecs(slices, pos + done, n - done, iov, kIovMax, &covered);
    if (count < 0) return -EIO;
    const off_t at = static_cast<off_t>(offset + done);
    ssize_t moved;
    do {
      moved = to_slices ? preadv(fd, iov, count, at) : pwritev(fd, iov, count, at);
    } while (moved < 0 && errno == EINTR);
    if (moved < 0) return done == 0 ? -errno : static_cast<long>(done);
    done += static_cast<size_t>(moved);
    if (static_cast<size_t>(moved) < covered) break;
  }
  return static_cast<long>(done);
}

// Why a node cannot be opened on the host, by type: symlinks as O_NOFOLLOW would (ELOOP);
// devices and FIFOs as on a nodev mount (EACCES: opening them would reach host drivers or host
// processes); sockets as Linux (ENXIO).
int OpenableType(const Inode& node) {
  switch (node.type()) {
    case S_IFREG:
    case S_IFDIR:
      return 0;
    case S_IFLNK:
      return -ELOOP;
    case S_IFSOCK:
      return -ENXIO;
    default:
      return -EACCES;
  }
}

}  // namespace

// OPEN: a handle with its own host open file description. With zero-message opens negotiated,
// ENOSYS (the kernel then stops sending OPEN and RELEASE for files). EACCES / ETXTBSY / EROFS /
// EISDIR (write to a directory) as the host gives them for the caller.
int PassthroughFs::DoOpen(Call& c) {
  if (no_open_.load(std::memory_order_relaxed)) return -ENOSYS;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  int rc = OpenableType(*node);
  if (rc != 0) return rc;
  int flags = 0;
  int fd = ReopenForGuest(node->fd(), c.a.a.open.flags, c.a.a.open.open_flags, &flags);
  if (fd < 0) return fd;
  fuse_open_out out{};
  out.fh = handles_.Insert(std::make_shared<OpenFile>(node, Fd(fd), flags));
  out.open_flags = OpenReplyFlags(false);
  return Reply(c, &out, sizeof(out));
}

// CREATE: creates (O_CREAT | O_EXCL first, so an existing name is never opened by accident)
// and answers the new entry plus an open handle. Without O_EXCL from the guest an existing entry
// is opened as OPEN would, never through a symlink and never a device. EEXIST with O_EXCL.
int PassthroughFs::DoCreate(Call& c) {
  if (c.req.out_bytes() < kCreateReply) return -EIO;
  auto parent = NodeOf(c.in.nodeid);
  if (parent == nullptr) return -ESTALE;
  if (!IsPlainName(c.a.name, c.a.name_len)) return -EINVAL;
  if (!parent->is_dir()) return -ENOTDIR;
  const fuse_create_in& in = c.a.a.create;
  const int flags = OpenFlagsForHost(in.flags) & ~O_DIRECTORY;
  SetThreadUmask(in.umask);
  Fd reserved;
  int rc = ReserveFd(&reserved);
  if (rc != 0) return rc;
  int fd = OpenBeneath(parent->fd(), c.a.name, flags | O_CREAT | O_EXCL, in.mode & 07777);
  if (fd == -EEXIST && (in.flags & O_EXCL) == 0) {
    int p = OpenBeneath(parent->fd(), c.a.name, O_PATH);
    if (p < 0) return p;
    Fd existing(p);
    struct statx st;
    rc = StatFd(existing.get(), &st);
    if (rc != 0) return rc;
    switch (st.stx_mode & S_IFMT) {
      case S_IFREG:
        break;
      case S_IFDIR:
        return -EISDIR;
      case S_IFLNK:
        return -ELOOP;
      default:
        return -EACCES;
    }
    int used = 0;
    fd = ReopenForGuest(existing.get(), in.flags, in.open_flags, &used);
    if (fd < 0) return fd;
    return ReplyCreated(c, Fd(fd), used, std::move(reserved));
  }
  if (fd < 0) return fd;
  return ReplyCreated(c, Fd(fd), flags, std::move(reserved));
}

// TMPFILE (Linux 6.1, O_TMPFILE): an unnamed regular file in the directory, answered like
// CREATE; LINK can give it a name later. EOPNOTSUPP when the host file system cannot.
int PassthroughFs::DoTmpfile(Call& c) {
  if (c.req.out_bytes() < kCreateReply) return -EIO;
  auto parent = NodeOf(c.in.nodeid);
  if (parent == nullptr) return -ESTALE;
  if (!parent->is_dir()) return -ENOTDIR;
  const fuse_create_in& in = c.a.a.create;
  int flags = OpenFlagsForHost(in.flags) & ~(O_DIRECTORY | O_TRUNC);
  if ((flags & O_ACCMODE) == O_RDONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  SetThreadUmask(in.umask);
  Fd reserved;
  int rc = ReserveFd(&reserved);
  if (rc != 0) return rc;
  const ProcPath dir(parent->fd());
  int fd = open(dir.c_str(), flags | O_TMPFILE | O_CLOEXEC, in.mode & 07777);
  if (fd < 0) return -errno;
  return ReplyCreated(c, Fd(fd), flags, std::move(reserved));
}

int PassthroughFs::ReopenForGuest(int opath_fd, uint32_t guest_flags, uint32_t open_flags,
                                  int* used) {
  const int flags = OpenFlagsForHost(guest_flags);
  DropFsetidScope kill((open_flags & FUSE_OPEN_KILL_SUIDGID) != 0 && (flags & O_TRUNC) != 0);
  int fd = ReopenInode(opath_fd, flags);
  const int asked = static_cast<int>(guest_flags) & kPassedOpenFlags;
  if (fd == -EACCES && (asked & O_ACCMODE) == O_WRONLY && (flags & O_ACCMODE) == O_RDWR) {
    // Writeback wants read access for page fills; a write-only file the caller may not read
    // is still opened write-only (the kernel then fails only the partial-page fills).
    fd = ReopenInode(opath_fd, asked & ~O_APPEND);
    *used = asked & ~O_APPEND;
    return fd;
  }
  *used = flags;
  return fd;
}

int PassthroughFs::ReplyCreated(Call& c, Fd file, int host_flags, Fd reserved) {
  // The node is taken from the open descriptor itself: the name may already be something else.
  reserved.reset();
  const ProcPath self(file.get());
  Fd opath(open(self.c_str(), O_PATH | O_CLOEXEC));
  if (!opath.valid()) return -errno;
  struct statx st;
  int rc = StatFd(opath.get(), &st);
  if (rc != 0) return rc;
  std::shared_ptr<Inode> node;
  rc = inodes_.Intern(std::move(opath), st, &node);
  if (rc != 0) return rc;
  struct {
    fuse_entry_out entry;
    fuse_open_out open;
  } out{};
  static_assert(sizeof(out) == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  FillEntry(node, st, &out.entry);
  // Under zero-message opens the kernel sends no RELEASE once it knows; fh 0 then means "use
  // the node" for this file too, and the descriptor is not kept.
  if (!no_open_.load(std::memory_order_relaxed)) {
    out.open.fh = handles_.Insert(std::make_shared<OpenFile>(node, std::move(file), host_flags));
  }
  out.open.open_flags = OpenReplyFlags(false);
  return Reply(c, &out, sizeof(out));
}

// READ: up to `size` bytes (fewer at end of file; 0 at or past it), preadv straight into the
// reply's slices after the out-header. EBADF for an unknown handle or one not open for reading,
// EISDIR, EIO from the host.
int PassthroughFs::DoRead(Call& c) {
  const fuse_read_in& r = c.a.a.read;
  std::shared_ptr<OpenFile> hold;
  std::shared_ptr<Inode> node;
  int fd = IoFd(c.in.nodeid, r.fh, false, &hold, &node);
  if (fd < 0) return fd;
  if (r.offset > static_cast<uint64_t>(LLONG_MAX)) return -EINVAL;
  const size_t room =
      c.req.out_bytes() > sizeof(fuse_out_header) ? c.req.out_bytes() - sizeof(fuse_out_header) : 0;
  size_t want = r.size < room ? r.size : room;
  if (want > kMaxRwCount) want = kMaxRwCount;
  const long done = MoveData(fd, c.req.out(), sizeof(fuse_out_header), want, r.offset, true);
  if (done < 0) return static_cast<int>(done);
  c.written = fuse::WriteHeader(c.req, c.in.unique, static_cast<size_t>(done));
  return 0;
}

// WRITE: pwritev straight from the request's slices. A short count when the disk fills after
// some bytes (the kernel retries the rest and then sees ENOSPC); ENOSPC, EDQUOT, EFBIG, EBADF
// (handle not open for writing). FUSE_WRITE_KILL_SUIDGID: the host clears suid/sgid as for an
// unprivileged writer.
int PassthroughFs::DoWrite(Call& c) {
  const fuse_write_in& w = c.a.a.write;
  std::shared_ptr<OpenFile> hold;
  std::shared_ptr<Inode> node;
  int fd = IoFd(c.in.nodeid, w.fh, true, &hold, &node);
  if (fd < 0) return fd;
  if (w.offset > static_cast<uint64_t>(LLONG_MAX)) return -EINVAL;
  DropFsetidScope kill((w.write_flags & FUSE_WRITE_KILL_SUIDGID) != 0);
  const size_t want = c.a.payload_len < kMaxRwCount ? c.a.payload_len : kMaxRwCount;
  const long done = MoveData(fd, c.req.in(), c.a.payload_off, want, w.offset, false);
  if (done < 0) return static_cast<int>(done);
  fuse_write_out out{};
  out.size = static_cast<uint32_t>(done);
  return Reply(c, &out, sizeof(out));
}

// FLUSH (a close(2) in the guest): the lock owner's POSIX locks go, as on close; the handle's
// descriptor is closed once through a duplicate so a host file system that reports errors at
// close (NFS, FUSE) reports them here.
int PassthroughFs::DoFlush(Call& c) {
  const fuse_flush_in& f = c.a.a.flush;
  std::shared_ptr<Inode> node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (LockOwners* locks = node->locks_if_any()) {
    if (locks->DropPosix(f.lock_owner)) lock_waiter_.Poke();
  }
  if (f.fh != 0) {
    std::shared_ptr<OpenFile> file;
    int rc = FileOf(f.fh, c.in.nodeid, &file);
    if (rc != 0) return rc;
    int dup_fd = dup(file->fd());
    if (dup_fd < 0) return -errno;
    if (close(dup_fd) != 0 && errno != EINTR) return -errno;
  }
  return ReplyOk(c);
}

// RELEASE: the handle goes (its descriptor closes when no request uses it any more). An unknown
// handle is not an error: after CREATE under zero-message opens the kernel may release fh 0.
int PassthroughFs::DoRelease(Call& c) {
  const fuse_release_in& r = c.a.a.release;
  std::shared_ptr<OpenFile> file;
  if (r.fh != 0 && FileOf(r.fh, c.in.nodeid, &file) == 0) handles_.Remove(r.fh);
  std::shared_ptr<Inode> node = file != nullptr ? file->inode() : NodeOf(c.in.nodeid);
  if (node != nullptr) {
    if (LockOwners* locks = node->locks_if_any()) {
      bool dropped = false;
      if ((r.release_flags & FUSE_RELEASE_FLOCK_UNLOCK) != 0) {
        dropped |= locks->DropFlock(r.lock_owner);
      }
      if ((r.release_flags & FUSE_RELEASE_FLUSH) != 0) dropped |= locks->DropPosix(r.lock_owner);
      if (dropped) lock_waiter_.Poke();
    }
  }
  return ReplyOk(c);
}

// FSYNC: fsync, or fdatasync with FUSE_FSYNC_FDATASYNC. EIO / ENOSPC from the host.
int PassthroughFs::DoFsync(Call& c) {
  std::shared_ptr<OpenFile> hold;
  std::shared_ptr<Inode> node;
  int fd = IoFd(c.in.nodeid, c.a.a.fsync.fh, false, &hold, &node);
  if (fd < 0) return fd;
  const bool data_only = (c.a.a.fsync.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0;
  if ((data_only ? fdatasync(fd) : fsync(fd)) != 0) return -errno;
  return ReplyOk(c);
}

// FALLOCATE: the guest's mode bits as given (KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE, ...): ENOSPC,
// EOPNOTSUPP, EBADF (not open for writing) from the host.
int PassthroughFs::DoFallocate(Call& c) {
  const fuse_fallocate_in& f = c.a.a.fallocate;
  std::shared_ptr<OpenFile> hold;
  std::shared_ptr<Inode> node;
  int fd = IoFd(c.in.nodeid, f.fh, true, &hold, &node);
  if (fd < 0) return fd;
  if (f.offset > static_cast<uint64_t>(LLONG_MAX) || f.length > static_cast<uint64_t>(LLONG_MAX)) {
    return -EINVAL;
  }
  if (fallocate(fd, static_cast<int>(f.mode), static_cast<off_t>(f.offset),
                static_cast<off_t>(f.length)) != 0) {
    return -errno;
  }
  return ReplyOk(c);
}

// LSEEK: SEEK_DATA / SEEK_HOLE (ENXIO past the end), also SEEK_SET and SEEK_END. The descriptor's
// own position is never used for I/O here, so moving it is harmless.
int PassthroughFs::DoLseek(Call& c) {
  const fuse_lseek_in& l = c.a.a.lseek;
  if (l.whence != SEEK_SET && l.whence != SEEK_END && l.whence != SEEK_DATA &&
      l.whence != SEEK_HOLE) {
    return -EINVAL;
  }
  std::shared_ptr<OpenFile> hold;
  std::shared_ptr<Inode> node;
  int fd = IoFd(c.in.nodeid, l.fh, false, &hold, &node);
  if (fd < 0) return fd;
  off_t at = lseek(fd, static_cast<off_t>(l.offset), static_cast<int>(l.whence));
  if (at < 0) return -errno;
  fuse_lseek_out out{};
  out.offset = static_cast<uint64_t>(at);
  return Reply(c, &out, sizeof(out));
}

// COPY_FILE_RANGE: host-side copy between two handles (reflink or in-kernel copy where the host
// file system can). EXDEV when the target belongs to another filesystem of the session (the
// kernel then falls back to read + write), EINVAL for flags, EBADF, ENOSPC.
int PassthroughFs::DoCopyFileRange(Call& c) {
  const fuse_copy_file_range_in& r = c.a.a.copy_file_range;
  if (r.flags != 0) return -EINVAL;
  if (!inodes_.Owns(r.nodeid_out)) return -EXDEV;
  std::shared_ptr<OpenFile> in_hold, out_hold;
  std::shared_ptr<Inode> in_node, out_node;
  int in_fd = IoFd(c.in.nodeid, r.fh_in, false, &in_hold, &in_node);
  if (in_fd < 0) return in_fd;
  int out_fd = IoFd(r.nodeid_out, r.fh_out, true, &out_hold, &out_node);
  if (out_fd < 0) return out_fd;
  if (r.off_in > static_cast<uint64_t>(LLONG_MAX) || r.off_out > static_cast<uint64_t>(LLONG_MAX)) {
    return -EINVAL;
  }
  loff_t off_in = static_cast<loff_t>(r.off_in);
  loff_t off_out = static_cast<loff_t>(r.off_out);
  const size_t len = r.len < kMaxRwCount ? static_cast<size_t>(r.len) : kMaxRwCount;
  ssize_t n = copy_file_range(in_fd, &off_in, out_fd, &off_out, len, 0);
  if (n < 0) return -errno;
  fuse_write_out out{};
  out.size = static_cast<uint32_t>(n);
  return Reply(c, &out, sizeof(out));
}

// SYNCFS: the host file system of the share's root.
int PassthroughFs::DoSyncfs(Call& c) {
  int rc = Syncfs();
  return rc != 0 ? rc : ReplyOk(c);
}

}  // namespace nydus::passthrough
