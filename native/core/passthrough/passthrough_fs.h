// passthrough_fs: a host directory served read-write over FUSE, as virtiofsd serves it (issue 12,
// Kata's shared directory `passthrough_fs`, `--shared-dir`, the writable overlay's upper layer).
//
// Layer: plain C++20 under native/core, no napi. It sits beside the RAFS handler behind the FUSE
// session (fuse/session.h): the session decodes a request's header (fuse/decode.h), sees from
// the node id that this filesystem owns the node, and calls Handle() inline on the transport
// thread (a virtqueue worker or a /dev/fuse reader); Handle() answers through the shared reply
// helpers (fuse/reply.h) straight into the request's writable slices. No JavaScript, no upcall.
//
// Pieces (all in this folder):
//   fuse/op_args per-op argument syntax (names, two-name ops, xattr values, the WRITE payload)
//   pt_host     owned fds, name checks, resolution beneath a directory fd, statx -> fuse_attr
//   pt_creds    per-thread fsuid/fsgid/groups/umask of the guest caller, CAP_FSETID dropping
//   pt_inodes   nodes keyed by (dev, ino, mount id) with O_PATH fds and lookup counts
//   pt_handles  FUSE file handles (one host open file description each)
//   pt_locks    POSIX/flock lock owners, the SETLKW waiter thread
//   pt_*_ops    the op handlers, grouped by kind (entries, attributes, files, directories)
//
// Containment: see pt_host.h. Credentials: see pt_creds.h. Every op reports the errno the host
// gave; the guest never sees an errno that Linux would not give for the same call.
//
// Threading: Handle(), Forget(), Interrupt(), RootEntry(), Syncfs() and Stats() may run on any
// number of threads at once; Reset() and OnInit() too (a request then sees the old or the new
// state). Each lock guards its own object (see the headers): InodeTable::mu_ (both node maps,
// lookup counts), HandleTable::mu_ (the handle map), Inode::data_mu_ (a node's no-handle data
// descriptors), LockOwners::mu_ (a node's lock owners), OpenFile::dir_mu (a directory stream),
// LockWaiter::mu_ (parked SETLKWs). No path holds two at once, except OpenFile::dir_mu and then
// InodeTable::mu_ (READDIRPLUS interns the entries it lists while it holds its stream). The
// LockWaiter's thread runs lock attempts and the CompleteFn holding none of them. Per-thread
// state (argument and iovec scratch, credentials, umask) is thread_local to the calling thread.
#pragma once

#include <linux/fuse.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "fuse/decode.h"
#include "fuse/op_args.h"
#include "passthrough/pt_handles.h"
#include "passthrough/pt_inodes.h"
#include "passthrough/pt_locks.h"
#include "transport/request.h"

namespace nydus::passthrough {

// The argument decoder is shared with the session's writable route (fuse/op_args.h).
using fuse::ArgSyntax;
using fuse::DecodeArgs;
using fuse::kMaxXattrName;
using fuse::kMaxXattrValue;
using fuse::OpArgs;
using fuse::SliceIovecs;
using fuse::Tail;

// How much the guest kernel may cache (upstream's cache_policy): kNever opens every file with
// FOPEN_DIRECT_IO, kAlways with FOPEN_KEEP_CACHE (and directories with FOPEN_CACHE_DIR), kAuto
// neither (the kernel drops the page cache when it sees mtime/size change).
enum class CachePolicy : uint8_t { kNever, kAuto, kAlways };

struct PassthroughOptions {
  // This filesystem's node ids are [node_base, node_base + node_span); the root is node_base.
  // A session serving only this share uses FUSE_ROOT_ID (1).
  uint64_t node_base = FUSE_ROOT_ID;
  uint64_t node_span = uint64_t{1} << 32;
  // Ask for the guest page cache to absorb writes (FUSE_WRITEBACK_CACHE). Files are then opened
  // read-write even for O_WRONLY (the kernel reads pages to fill partial writes) and without
  // O_APPEND (the kernel places appends itself).
  bool writeback = false;
  // Zero-message open (upstream's no_open): when the kernel offers FUSE_NO_OPEN_SUPPORT, OPEN is
  // answered ENOSYS once and the kernel stops sending OPEN/RELEASE; READ/WRITE then arrive with
  // fh 0 and use one descriptor per node. The host then checks no permission at open: the
  // guest kernel's checks (virtiofs mounts always use default_permissions) are the only ones.
  bool no_open = false;
  bool no_opendir = false;  // the same for directories (FUSE_NO_OPENDIR_SUPPORT)
  // Serve extended attributes; false answers the xattr ops ENOSYS (the kernel stops asking).
  bool xattr = true;
  // POSIX ACLs (FUSE_POSIX_ACL, with FUSE_DONT_MASK and FUSE_SETXATTR_EXT): the host applies
  // the umask only where the parent has no default ACL, and kills SGID on ACL changes as Linux.
  bool posix_acl = false;
  // FUSE_HANDLE_KILLPRIV_V2: the server clears suid/sgid on write/truncate/chown when the kernel
  // says so (the flags are honoured whenever they arrive; this only asks for them).
  bool killpriv_v2 = false;
  // Ask the kernel to send POSIX locks / flock here (else it keeps them inside the guest).
  bool posix_locks = false;
  bool flock = false;
  CachePolicy cache = CachePolicy::kAuto;
  // Pass the guest's O_DIRECT on to the host. Off by default (unlike upstream): host O_DIRECT
  // needs block-aligned buffers, and a /dev/fuse reply buffer starts 16 bytes after an aligned
  // address, so the guest would see EINVAL; without it the host page cache is used.
  bool allow_direct_io = false;
  uint64_t entry_timeout_ns = 5'000'000'000;
  uint64_t attr_timeout_ns = 5'000'000'000;
  // Run host permission checks as the guest's caller (pt_creds.h). False: as the daemon.
  bool caller_credentials = true;
};

// Upstream nydusd's fixed options for `fs_type: passthrough_fs` (Kata's /containers share):
// writeback, no_open and xattr on, the rest at fuse-backend-rs defaults (clients.md §3.8).
PassthroughOptions KataSharedDirOptions();

struct PassthroughStats {
  uint64_t requests = 0;
  uint64_t errors = 0;  // error replies
  size_t inodes = 0;    // nodes known, the root included
  size_t handles = 0;   // open FUSE handles
  size_t lock_waits = 0;
  bool caller_credentials = false;  // the switch is enabled and the process may do it
  bool writeback = false;           // as negotiated
  bool no_open = false;
};

class PassthroughFs {
 public:
  // Completes a request Handle() deferred (SETLKW): the reply is in req's writable bytes.
  // Default: req->Complete(written).
  using CompleteFn = std::function<void(transport::FuseRequest* req, uint32_t written, bool error)>;

  // Serves the directory `root_dir` (a symlink to a directory is followed here, once: the path
  // is the administrator's; nothing below it is ever followed). Returns nullptr with
  // *err = -errno when it cannot (ENOENT, ENOTDIR, EACCES, ELOOP, and ENOSYS when /proc/self/fd
  // is not available: every reopen goes through it).
  static std::unique_ptr<PassthroughFs> Open(const std::string& root_dir,
                                             const PassthroughOptions& options, int* err);
  ~PassthroughFs();
  PassthroughFs(const PassthroughFs&) = delete;
  PassthroughFs& operator=(const PassthroughFs&) = delete;

  // INIT. The FUSE_* flags (flags | flags2 << 32) this filesystem wants the session to ask for
  // when the kernel offers them; and, once INIT is answered (or at mount time when the session
  // is already initialized), what the kernel offered and what the reply granted. Until OnInit,
  // requests are served as with nothing negotiated.
  uint64_t WantedInitFlags() const;
  void OnInit(uint64_t kernel_flags, uint64_t granted_flags);

  struct Outcome {
    uint32_t written = 0;   // reply bytes in req.out() (0: no reply, as for FORGET)
    bool error = false;     // the reply is an error
    bool deferred = false;  // the reply comes later through the CompleteFn; nothing to do now
  };
  // Serves one request whose in-header was validated (fuse/decode.h Decode returned kOk, or
  // kShortArgs/kBadName for ops the shared table parses differently: only `d.in` is used, the
  // arguments are decoded here). Its node id must be one this filesystem owns. Writes the reply
  // into req's writable slices and returns; the caller completes the request unless deferred.
  // Answers ENOSYS for INIT, DESTROY, INTERRUPT (session business) and unknown opcodes.
  Outcome Handle(const fuse::DecodedRequest& d, transport::FuseRequest& req);
  Outcome Handle(const fuse_in_header& in, transport::FuseRequest& req);

  // One FORGET entry (the session splits BATCH_FORGET by node range and calls this per entry).
  void Forget(uint64_t nodeid, uint64_t nlookup);
  // The root's entry (node id root_id(), this filesystem's timeouts), for a session that answers
  // the LOOKUP of the mount point itself (a pseudo root with several mounts). The root holds no
  // lookup count: FORGET of it is ignored. 0 or -errno.
  int RootEntry(fuse_entry_out* out) const;
  // syncfs(2) of the host file system under the share, for a session that answers SYNCFS of its
  // pseudo root by syncing every writable mount. 0 or -errno.
  int Syncfs() const;
  // FUSE_INTERRUPT for request `unique`: a parked SETLKW ends with EINTR. False when nothing
  // here waits for it (nothing else here ever blocks).
  bool Interrupt(uint64_t unique);
  // Session reset (DESTROY, frontend disconnect): every handle and node but the root is dropped,
  // parked locks end with EIO.
  void Reset();

  void set_completion(CompleteFn fn) { complete_ = std::move(fn); }
  bool Owns(uint64_t nodeid) const { return inodes_.Owns(nodeid); }
  uint64_t root_id() const { return inodes_.root_id(); }
  PassthroughStats Stats() const;
  // The kernel's lookup count of a node as this filesystem tracks it (tests).
  uint64_t LookupCount(uint64_t nodeid) const { return inodes_.LookupCount(nodeid); }

 private:
  struct Call;
  using Handler = int (PassthroughFs::*)(Call&);
  struct OpRow {
    Handler fn = nullptr;
    ArgSyntax syntax{0, Tail::kNone};
    bool caller = false;  // runs with the caller's credentials
  };
  static const OpRow* RowOf(uint32_t opcode);

  PassthroughFs(const PassthroughOptions& options, Fd root, Fd root_dir, const struct statx& st);

  // Shared pieces of the handlers (passthrough_fs.cc).
  std::shared_ptr<Inode> NodeOf(uint64_t nodeid) const;
  int ReplyEntry(Call& c, const std::shared_ptr<Inode>& node, const struct statx& st);
  int ReplyAttr(Call& c, int fd);
  int Reply(Call& c, const void* body, size_t len);
  int ReplyOk(Call& c) { return Reply(c, nullptr, 0); }
  // Takes one descriptor slot (a duplicate of the root) so that an op creating something on the
  // host fails with EMFILE/ENFILE before it creates, as Linux's open(O_CREAT) does, instead of
  // after, when the new node's O_PATH descriptor cannot be opened. Released right before that.
  int ReserveFd(Fd* out) const;
  // Looks up `name` under `parent` (an already validated component) and adds a reference.
  int LookupChild(const std::shared_ptr<Inode>& parent, const char* name,
                  std::shared_ptr<Inode>* out, struct statx* st);
  // The FUSE handle `fh` of node `nodeid`; EBADF when unknown or of another node.
  int FileOf(uint64_t fh, uint64_t nodeid, std::shared_ptr<OpenFile>* out) const;
  // The descriptor for I/O on (fh, node): the handle's, or the node's own under no_open (fh 0).
  int IoFd(uint64_t nodeid, uint64_t fh, bool write, std::shared_ptr<OpenFile>* hold,
           std::shared_ptr<Inode>* node_hold);
  // The directory stream for READDIR/FSYNCDIR: the handle's, or a fresh one under no_opendir.
  int DirOf(uint64_t nodeid, uint64_t fh, std::shared_ptr<OpenFile>* out);
  uint32_t OpenReplyFlags(bool dir) const;
  int OpenFlagsForHost(uint32_t guest_flags) const;
  void FillEntry(const std::shared_ptr<Inode>& node, const struct statx& st,
                 fuse_entry_out* out) const;

  // Entries (pt_entry_ops.cc).
  int DoLookup(Call& c);
  int DoForget(Call& c);
  int DoBatchForget(Call& c);
  int DoMknod(Call& c);
  int DoMkdir(Call& c);
  int DoSymlink(Call& c);
  int DoLink(Call& c);
  int DoUnlink(Call& c);
  int DoRmdir(Call& c);
  int DoRename(Call& c);
  int DoRename2(Call& c);
  int FinishCreated(Call& c, const std::shared_ptr<Inode>& parent, const char* name, Fd reserved);
  // MKNOD / MKDIR / SYMLINK: `make` creates c.a.name under the given directory fd (0 or -1 with
  // errno) with the thread's umask set to `umask`.
  int MakeEntry(Call& c, uint32_t umask, int (*make)(int dirfd, const OpArgs& a));
  int RenameCommon(Call& c, uint64_t newdir, uint32_t flags);

  // Attributes and xattrs (pt_attr_ops.cc).
  int DoGetattr(Call& c);
  int DoSetattr(Call& c);
  int DoReadlink(Call& c);
  int DoAccess(Call& c);
  int DoStatfs(Call& c);
  int DoSetxattr(Call& c);
  int DoGetxattr(Call& c);
  int DoListxattr(Call& c);
  int DoRemovexattr(Call& c);
  // GETXATTR (list false) / LISTXATTR: a size probe or the bytes.
  int ReadXattr(Call& c, bool list);

  // Files (pt_file_ops.cc).
  int DoOpen(Call& c);
  int DoCreate(Call& c);
  int DoTmpfile(Call& c);
  int DoRead(Call& c);
  int DoWrite(Call& c);
  int DoFlush(Call& c);
  int DoRelease(Call& c);
  int DoFsync(Call& c);
  int DoFallocate(Call& c);
  int DoLseek(Call& c);
  int DoCopyFileRange(Call& c);
  int DoSyncfs(Call& c);
  int ReplyCreated(Call& c, Fd file, int host_flags, Fd reserved);
  // Reopens an inode for the guest's open flags (writeback adjustments, kill-suid on O_TRUNC).
  // Returns the fd or -errno; *used = the host flags it was opened with.
  int ReopenForGuest(int opath_fd, uint32_t guest_flags, uint32_t open_flags, int* used);
  // Completes a parked SETLKW (on the waiter thread, or the thread failing it).
  void CompleteDeferred(transport::FuseRequest* req, uint64_t unique, int err);

  // Directories (pt_dir_ops.cc).
  int DoOpendir(Call& c);
  int DoReaddir(Call& c);
  int DoReaddirplus(Call& c);
  int DoReleasedir(Call& c);
  int DoFsyncdir(Call& c);
  int ReaddirCommon(Call& c, bool plus);

  // Locks (pt_lock_ops.cc).
  int DoGetlk(Call& c);
  int DoSetlk(Call& c);
  int DoSetlkw(Call& c);
  int SetlkCommon(Call& c, bool wait);

  const PassthroughOptions options_;
  const bool can_switch_creds_;
  const Fd root_dir_;  // O_RDONLY|O_DIRECTORY on the root, for syncfs (O_PATH fds cannot)
  InodeTable inodes_;
  HandleTable handles_;
  LockWaiter lock_waiter_;
  CompleteFn complete_;  // set before requests flow (set_completion), then read-only

  // Negotiated at INIT (OnInit). ORDERING: relaxed; each is an independent switch read per
  // request, and a request racing OnInit may see the old value, which is what a request sent
  // before the INIT reply gets anyway.
  std::atomic<bool> writeback_{false};
  std::atomic<bool> no_open_{false};
  std::atomic<bool> no_opendir_{false};
  std::atomic<bool> setxattr_ext_{false};
  std::atomic<bool> posix_acl_{false};

  // Counters: relaxed, read together only for Stats().
  mutable std::atomic<uint64_t> requests_{0};
  mutable std::atomic<uint64_t> errors_{0};
};

}  // namespace nydus::passthrough
