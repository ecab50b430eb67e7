#include "passthrough/passthrough_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "fuse/abi.h"
#include "fuse/reply.h"
#include "passthrough/pt_call.h"
#include "passthrough/pt_creds.h"

namespace nydus::passthrough {
namespace {

// FUSE_COMPAT_SETXATTR_IN_SIZE: without FUSE_SETXATTR_EXT the kernel sends size + flags only.
constexpr uint16_t kCompatSetxattrIn = 8;

}  // namespace

PassthroughOptions KataSharedDirOptions() {
  PassthroughOptions o;
  o.writeback = true;
  o.no_open = true;
  o.xattr = true;
  return o;
}

// The op table (style rule 3): handler, argument syntax, and whether the host must check
// permissions as the caller. Ops on an already open descriptor (READ, WRITE, FSYNC, ...) check
// nothing on the host (the open did), so they skip the credential switch.
const PassthroughFs::OpRow* PassthroughFs::RowOf(uint32_t opcode) {
  struct Table {
    OpRow rows[fuse::kOpcodeTableSize] = {};
    Table() {
      auto set = [this](uint32_t op, Handler fn, uint16_t fixed, Tail tail, bool caller) {
        rows[op] = OpRow{fn, ArgSyntax{fixed, tail}, caller};
      };
      using P = PassthroughFs;
      set(FUSE_LOOKUP, &P::DoLookup, 0, Tail::kName, true);
      set(FUSE_FORGET, &P::DoForget, sizeof(fuse_forget_in), Tail::kNone, false);
      set(FUSE_BATCH_FORGET, &P::DoBatchForget, sizeof(fuse_batch_forget_in), Tail::kForgets,
          false);
      set(FUSE_GETATTR, &P::DoGetattr, sizeof(fuse_getattr_in), Tail::kNone, false);
      set(FUSE_SETATTR, &P::DoSetattr, sizeof(fuse_setattr_in), Tail::kNone, true);
      set(FUSE_READLINK, &P::DoReadlink, 0, Tail::kNone, false);
      set(FUSE_SYMLINK, &P::DoSymlink, 0, Tail::kTwoNames, true);
      set(FUSE_MKNOD, &P::DoMknod, sizeof(fuse_mknod_in), Tail::kName, true);
      set(FUSE_MKDIR, &P::DoMkdir, sizeof(fuse_mkdir_in), Tail::kName, true);
      set(FUSE_UNLINK, &P::DoUnlink, 0, Tail::kName, true);
      set(FUSE_RMDIR, &P::DoRmdir, 0, Tail::kName, true);
      set(FUSE_RENAME, &P::DoRename, sizeof(fuse_rename_in), Tail::kTwoNames, true);
      set(FUSE_RENAME2, &P::DoRename2, sizeof(fuse_rename2_in), Tail::kTwoNames, true);
      set(FUSE_LINK, &P::DoLink, sizeof(fuse_link_in), Tail::kName, true);
      set(FUSE_OPEN, &P::DoOpen, sizeof(fuse_open_in), Tail::kNone, true);
      set(FUSE_CREATE, &P::DoCreate, sizeof(fuse_create_in), Tail::kName, true);
      set(FUSE_TMPFILE, &P::DoTmpfile, sizeof(fuse_create_in), Tail::kNone, true);
      set(FUSE_READ, &P::DoRead, sizeof(fuse_read_in), Tail::kNone, false);
      set(FUSE_WRITE, &P::DoWrite, sizeof(fuse_write_in), Tail::kPayload, false);
      set(FUSE_STATFS, &P::DoStatfs, 0, Tail::kNone, false);
      set(FUSE_RELEASE, &P::DoRelease, sizeof(fuse_release_in), Tail::kNone, false);
      set(FUSE_FLUSH, &P::DoFlush, sizeof(fuse_flush_in), Tail::kNone, false);
      set(FUSE_FSYNC, &P::DoFsync, sizeof(fuse_fsync_in), Tail::kNone, false);
      set(FUSE_SETXATTR, &P::DoSetxattr, sizeof(fuse_setxattr_in), Tail::kNameValue, true);
      set(FUSE_GETXATTR, &P::DoGetxattr, sizeof(fuse_getxattr_in), Tail::kName, true);
      set(FUSE_LISTXATTR, &P::DoListxattr, sizeof(fuse_getxattr_in), Tail::kNone, true);
      set(FUSE_REMOVEXATTR, &P::DoRemovexattr, 0, Tail::kName, true);
      set(FUSE_OPENDIR, &P::DoOpendir, sizeof(fuse_open_in), Tail::kNone, true);
      set(FUSE_READDIR, &P::DoReaddir, sizeof(fuse_read_in), Tail::kNone, false);
      set(FUSE_READDIRPLUS, &P::DoReaddirplus, sizeof(fuse_read_in), Tail::kNone, true);
      set(FUSE_RELEASEDIR, &P::DoReleasedir, sizeof(fuse_release_in), Tail::kNone, false);
      set(FUSE_FSYNCDIR, &P::DoFsyncdir, sizeof(fuse_fsync_in), Tail::kNone, false);
      set(FUSE_ACCESS, &P::DoAccess, sizeof(fuse_access_in), Tail::kNone, true);
      set(FUSE_GETLK, &P::DoGetlk, sizeof(fuse_lk_in), Tail::kNone, false);
      set(FUSE_SETLK, &P::DoSetlk, sizeof(fuse_lk_in), Tail::kNone, false);
      set(FUSE_SETLKW, &P::DoSetlkw, sizeof(fuse_lk_in), Tail::kNone, false);
      set(FUSE_FALLOCATE, &P::DoFallocate, sizeof(fuse_fallocate_in), Tail::kNone, false);
      set(FUSE_LSEEK, &P::DoLseek, sizeof(fuse_lseek_in), Tail::kNone, false);
      set(FUSE_COPY_FILE_RANGE, &P::DoCopyFileRange, sizeof(fuse_copy_file_range_in), Tail::kNone,
          false);
      set(FUSE_SYNCFS, &P::DoSyncfs, sizeof(fuse_syncfs_in), Tail::kNone, false);
    }
  };
  static const Table kTable;
  if (opcode >= fuse::kOpcodeTableSize || kTable.rows[opcode].fn == nullptr) return nullptr;
  return &kTable.rows[opcode];
}

std::unique_ptr<PassthroughFs> PassthroughFs::Open(const std::string& root_dir,
                                                   const PassthroughOptions& options, int* err) {
  // The share's own path is the administrator's choice: a symlink to a directory is followed
  // here, once. Everything below the root is resolved without following.
  Fd root(open(root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    *err = -errno;
    return nullptr;
  }
  struct statx st;
  int rc = StatFd(root.get(), &st);
  if (rc != 0) {
    *err = rc;
    return nullptr;
  }
  int dir = ReopenInode(root.get(), O_RDONLY | O_DIRECTORY);
  if (dir < 0) {
    // ENOENT here means /proc/self/fd is missing (no /proc in this mount namespace).
    *err = dir == -ENOENT ? -ENOSYS : dir;
    return nullptr;
  }
  *err = 0;
  return std::unique_ptr<PassthroughFs>(new PassthroughFs(options, std::move(root), Fd(dir), st));
}

PassthroughFs::PassthroughFs(const PassthroughOptions& options, Fd root, Fd root_dir,
                             const struct statx& st)
    : options_(options),
      can_switch_creds_(options.caller_credentials && CanSwitchCredentials()),
      root_dir_(std::move(root_dir)),
      inodes_(options.node_base, options.node_span) {
  inodes_.SetRoot(std::move(root), st);
  complete_ = [](transport::FuseRequest* req, uint32_t written, bool) { req->Complete(written); };
  if (options.caller_credentials && !can_switch_creds_) {
    NLOG_WARN("passthrough",
              "no CAP_SETUID/CAP_SETGID: host permission checks run as the daemon, not as the "
              "guest's caller");
  }
}

PassthroughFs::~PassthroughFs() {
  // Parked locks are answered (EIO) while complete_ and the tables still exist.
  lock_waiter_.Stop();
}

uint64_t PassthroughFs::WantedInitFlags() const {
  uint64_t f = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
               FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_INIT_EXT;
  // O_TRUNC arrives inside OPEN (one request, truncated with the open's permission check);
  // zero-message opens cannot carry it (upstream drops it with no_open too).
  if (!options_.no_open) f |= FUSE_ATOMIC_O_TRUNC;
  if (options_.cache == CachePolicy::kAuto) f |= FUSE_AUTO_INVAL_DATA;
  if (options_.writeback) f |= FUSE_WRITEBACK_CACHE;
  if (options_.posix_acl) f |= FUSE_POSIX_ACL | FUSE_DONT_MASK | FUSE_SETXATTR_EXT;
  if (options_.killpriv_v2) f |= FUSE_HANDLE_KILLPRIV_V2;
  if (options_.posix_locks) f |= FUSE_POSIX_LOCKS;
  if (options_.flock) f |= FUSE_FLOCK_LOCKS;
  return f;
}

void PassthroughFs::OnInit(uint64_t kernel_flags, uint64_t granted_flags) {
  writeback_.store(options_.writeback && (granted_flags & FUSE_WRITEBACK_CACHE) != 0,
                   std::memory_order_relaxed);
  no_open_.store(options_.no_open && (kernel_flags & FUSE_NO_OPEN_SUPPORT) != 0,
                 std::memory_order_relaxed);
  no_opendir_.store(options_.no_opendir && (kernel_flags & FUSE_NO_OPENDIR_SUPPORT) != 0,
                    std::memory_order_relaxed);
  setxattr_ext_.store((granted_flags & FUSE_SETXATTR_EXT) != 0, std::memory_order_relaxed);
  posix_acl_.store((granted_flags & FUSE_POSIX_ACL) != 0, std::memory_order_relaxed);
}

PassthroughFs::Outcome PassthroughFs::Handle(const fuse::DecodedRequest& d,
                                             transport::FuseRequest& req) {
  return Handle(d.in, req);
}

PassthroughFs::Outcome PassthroughFs::Handle(const fuse_in_header& in,
                                             transport::FuseRequest& req) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  // One argument buffer per thread: requests on one thread never overlap, and a deferred
  // request copies what it keeps.
  thread_local OpArgs args;
  Call c{in, req, args};
  int err = 0;
  const OpRow* row = RowOf(in.opcode);
  if (row == nullptr) {
    err = -ENOSYS;
  } else if (!inodes_.Owns(in.nodeid) && in.opcode != FUSE_BATCH_FORGET &&
             in.opcode != FUSE_SYNCFS) {
    // The session routes by node id; a node outside our slice is a routing bug or a guest
    // naming a node of another mount through us.
    err = in.opcode == FUSE_FORGET ? 0 : -ESTALE;
  } else {
    ArgSyntax syntax = row->syntax;
    if (in.opcode == FUSE_SETXATTR && !setxattr_ext_.load(std::memory_order_relaxed)) {
      syntax.fixed = kCompatSetxattrIn;
    }
    err = -DecodeArgs(in, req, syntax, &args);
    if (err == 0) {
      if (row->caller && can_switch_creds_) {
        CallerScope creds(in.uid, in.gid, true);
        err = creds.error() != 0 ? creds.error() : (this->*row->fn)(c);
      } else {
        err = (this->*row->fn)(c);
      }
    }
  }
  if (c.deferred) return Outcome{0, false, true};
  if (err < 0) {
    if (err < -fuse::kMaxErrno) err = -EIO;
    if (err != -ENOENT && err != -ENODATA) {
      NLOG_DEBUG("passthrough", "%u on node %llu: errno %d", in.opcode,
                 static_cast<unsigned long long>(in.nodeid), -err);
    }
    c.written = fuse::WriteError(req, in.unique, -err);
    c.error = true;
  }
  if (c.error) errors_.fetch_add(1, std::memory_order_relaxed);
  return Outcome{c.written, c.error, false};
}

void PassthroughFs::Forget(uint64_t nodeid, uint64_t nlookup) { inodes_.Forget(nodeid, nlookup); }

int PassthroughFs::RootEntry(fuse_entry_out* out) const {
  const auto root = inodes_.root();
  struct statx st;
  int rc = StatFd(root->fd(), &st);
  if (rc != 0) return rc;
  FillEntry(root, st, out);
  return 0;
}

int PassthroughFs::Syncfs() const { return syncfs(root_dir_.get()) == 0 ? 0 : -errno; }

bool PassthroughFs::Interrupt(uint64_t unique) { return lock_waiter_.Interrupt(unique); }

void PassthroughFs::Reset() {
  lock_waiter_.FailAll(EIO);
  handles_.Clear();
  inodes_.Clear();
}

PassthroughStats PassthroughFs::Stats() const {
  PassthroughStats s;
  s.requests = requests_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.inodes = inodes_.size();
  s.handles = handles_.size();
  s.lock_waits = lock_waiter_.size();
  s.caller_credentials = can_switch_creds_;
  s.writeback = writeback_.load(std::memory_order_relaxed);
  s.no_open = no_open_.load(std::memory_order_relaxed);
  return s;
}

// ---- shared pieces of the handlers ----

std::shared_ptr<Inode> PassthroughFs::NodeOf(uint64_t nodeid) const { return inodes_.Get(nodeid); }

int PassthroughFs::Reply(Call& c, const void* body, size_t len) {
  bool overflow = false;
  c.written = fuse::WriteReply(c.req, c.in.unique, body, len, &overflow);
  c.error = overflow;
  return 0;
}

void PassthroughFs::FillEntry(const std::shared_ptr<Inode>& node, const struct statx& st,
                              fuse_entry_out* out) const {
  std::memset(out, 0, sizeof(*out));
  out->nodeid = node->nodeid();
  out->generation = node->generation();
  SplitNs(options_.entry_timeout_ns, &out->entry_valid, &out->entry_valid_nsec);
  SplitNs(options_.attr_timeout_ns, &out->attr_valid, &out->attr_valid_nsec);
  AttrFromStatx(st, &out->attr);
}

int PassthroughFs::ReplyEntry(Call& c, const std::shared_ptr<Inode>& node, const struct statx& st) {
  fuse_entry_out e;
  FillEntry(node, st, &e);
  return Reply(c, &e, sizeof(e));
}

int PassthroughFs::ReplyAttr(Call& c, int fd) {
  struct statx st;
  int rc = StatFd(fd, &st);
  if (rc != 0) return rc;
  fuse_attr_out out{};
  SplitNs(options_.attr_timeout_ns, &out.attr_valid, &out.attr_valid_nsec);
  AttrFromStatx(st, &out.attr);
  return Reply(c, &out, sizeof(out));
}

int PassthroughFs::ReserveFd(Fd* out) const {
  int fd = fcntl(root_dir_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return -errno;
  *out = Fd(fd);
  return 0;
}

int PassthroughFs::LookupChild(const std::shared_ptr<Inode>& parent, const char* name,
                               std::shared_ptr<Inode>* out, struct statx* st) {
  int fd = OpenBeneath(parent->fd(), name, O_PATH);
  if (fd < 0) return fd;
  Fd child(fd);
  int rc = StatFd(child.get(), st);
  if (rc != 0) return rc;
  return inodes_.Intern(std::move(child), *st, out);
}

int PassthroughFs::FileOf(uint64_t fh, uint64_t nodeid, std::shared_ptr<OpenFile>* out) const {
  auto f = handles_.Get(fh);
  if (f == nullptr || f->inode()->nodeid() != nodeid) return -EBADF;
  *out = std::move(f);
  return 0;
}

int PassthroughFs::IoFd(uint64_t nodeid, uint64_t fh, bool write, std::shared_ptr<OpenFile>* hold,
                        std::shared_ptr<Inode>* node_hold) {
  if (fh != 0) {
    int rc = FileOf(fh, nodeid, hold);
    return rc != 0 ? rc : (*hold)->fd();
  }
  // fh 0: the kernel's zero-message open (no_open). Only regular files have data descriptors;
  // a device, FIFO or socket is never opened on the host.
  *node_hold = NodeOf(nodeid);
  if (*node_hold == nullptr) return -ESTALE;
  if ((*node_hold)->is_dir()) return -EISDIR;
  if (!(*node_hold)->is_reg()) return -EBADF;
  return (*node_hold)->DataFd(write);
}

uint32_t PassthroughFs::OpenReplyFlags(bool dir) const {
  switch (options_.cache) {
    case CachePolicy::kNever:
      return dir ? 0 : FOPEN_DIRECT_IO;
    case CachePolicy::kAlways:
      return dir ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : FOPEN_KEEP_CACHE;
    case CachePolicy::kAuto:
      break;
  }
  return 0;
}

int PassthroughFs::OpenFlagsForHost(uint32_t guest_flags) const {
  int f = static_cast<int>(guest_flags) & kPassedOpenFlags;
  if (!options_.allow_direct_io) f &= ~O_DIRECT;
  if (writeback_.load(std::memory_order_relaxed)) {
    // The kernel reads pages around partial writes through any handle, and computes append
    // positions itself.
    if ((f & O_ACCMODE) == O_WRONLY) f = (f & ~O_ACCMODE) | O_RDWR;
    f &= ~O_APPEND;
  }
  return f;
}

}  // namespace nydus::passthrough
