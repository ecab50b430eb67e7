// FuseSession: the handler's answers to upcalls, validated and encoded into the waiting request.
#include <sys/stat.h>

#include <cstring>

#include "common/log.h"
#include "fuse/reply.h"
#include "fuse/session.h"
#include "transport/slices.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";
constexpr size_t kXattrSizeMax = 65536;  // XATTR_SIZE_MAX: the kernel never takes more

thread_local std::vector<uint8_t> t_pack;

bool IsOkOp(uint32_t op) {
  switch (op) {
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
    case FUSE_FLUSH:
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_ACCESS:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_SETXATTR:
    case FUSE_REMOVEXATTR:
    case FUSE_FALLOCATE:
      return true;
    default:
      return false;
  }
}
// Ops answered with an entry: LOOKUP and the ones that make a name (writable ranges).
bool IsLookup(uint32_t op) {
  return op == FUSE_LOOKUP || op == FUSE_MKNOD || op == FUSE_MKDIR || op == FUSE_SYMLINK ||
         op == FUSE_LINK;
}
bool IsGetattr(uint32_t op) { return op == FUSE_GETATTR || op == FUSE_SETATTR; }
bool IsCreate(uint32_t op) { return op == FUSE_CREATE; }
bool IsWrite(uint32_t op) { return op == FUSE_WRITE; }
bool IsOpen(uint32_t op) { return op == FUSE_OPEN || op == FUSE_OPENDIR; }
bool IsStatfs(uint32_t op) { return op == FUSE_STATFS; }
bool IsData(uint32_t op) { return op == FUSE_READ || op == FUSE_READLINK; }
bool IsXattr(uint32_t op) { return op == FUSE_GETXATTR || op == FUSE_LISTXATTR; }
bool IsReaddir(uint32_t op) { return op == FUSE_READDIR || op == FUSE_READDIRPLUS; }
bool IsLseek(uint32_t op) { return op == FUSE_LSEEK; }

}  // namespace

Pending* FuseSession::ClaimFor(uint64_t token, const char* what, bool (*accepts)(uint32_t),
                               int* rc) {
  Pending* p = pending_.Claim(token);
  if (p == nullptr) {
    counters_.stale_replies.fetch_add(1, std::memory_order_relaxed);
    *rc = -ESTALE;
    return nullptr;
  }
  counters_.handler_replies.fetch_add(1, std::memory_order_relaxed);
  if (p->kind == PendingKind::kParkedRead) {
    *rc = Garbage(p, what, "a read miss is answered with resolveMiss");
    return nullptr;
  }
  if (!accepts(p->opcode)) {
    *rc = Garbage(p, what, "wrong answer kind for this request");
    return nullptr;
  }
  *rc = 0;
  return p;
}

int FuseSession::Garbage(Pending* p, const char* what, const char* why) {
  counters_.garbage_replies.fetch_add(1, std::memory_order_relaxed);
  NLOG_ERROR(kLog, "invalid %s answer to %s (unique %llu): %s; replying EIO", what,
             p->kind == PendingKind::kParkedRead ? "a read miss" : OpName(p->opcode),
             static_cast<unsigned long long>(p->unique), why);
  if (p->kind == PendingKind::kParkedRead)
    Unpark(p, PendingTable::TokenOf(p->index, p->generation));
  FinishPending(p, WriteError(*p->req, p->unique, EIO), true);
  pending_.Release(p);
  return -EINVAL;
}

void FuseSession::CompleteClaimed(Pending* p, uint32_t written, bool error) {
  FinishPending(p, written, error);
  pending_.Release(p);
}

uint32_t FuseSession::WriteCounted(transport::FuseRequest& req, uint64_t unique, const void* body,
                                   size_t len, bool* overflow) {
  const uint32_t n = WriteReply(req, unique, body, len, overflow);
  if (*overflow) counters_.reply_overflows.fetch_add(1, std::memory_order_relaxed);
  return n;
}

int FuseSession::CompleteWith(Pending* p, const void* body, size_t len) {
  bool overflow = false;
  const uint32_t n = WriteCounted(*p->req, p->unique, body, len, &overflow);
  CompleteClaimed(p, n, overflow);
  return 0;
}

int FuseSession::ReplyError(uint64_t token, int err) {
  Pending* p = pending_.Claim(token);
  if (p == nullptr) {
    counters_.stale_replies.fetch_add(1, std::memory_order_relaxed);
    return -ESTALE;
  }
  counters_.handler_replies.fetch_add(1, std::memory_order_relaxed);
  if (err <= 0 || err > kMaxErrno) return Garbage(p, "error", "errno must be in [1, 511]");
  if (p->kind == PendingKind::kParkedRead) Unpark(p, token);
  NLOG_TRACE(kLog, "%s -> errno %d", OpName(p->opcode), err);
  FinishPending(p, WriteError(*p->req, p->unique, err), true);
  pending_.Release(p);
  return 0;
}

int FuseSession::ReplyOk(uint64_t token) {
  int rc;
  Pending* p = ClaimFor(token, "ok", IsOkOp, &rc);
  if (p == nullptr) return rc;
  CompleteClaimed(p, WriteReply(*p->req, p->unique, nullptr, 0), false);
  return 0;
}

int FuseSession::ReplyEntry(uint64_t token, const double* rec) {
  int rc;
  Pending* p = ClaimFor(token, "entry", IsLookup, &rc);
  if (p == nullptr) return rc;
  fuse_entry_out e;
  const char* why = nullptr;
  if (!EntryFromRecord(rec, true, &e, &why)) return Garbage(p, "entry", why);
  if (p->opcode != FUSE_LOOKUP && e.nodeid == 0) {
    return Garbage(p, "entry", "a name that was made needs a node id");
  }
  // A native filesystem's root (a mount point's entry) changes under the kernel: not cached.
  if (cache_replies_ && p->opcode == FUSE_LOOKUP && !writable_.Contains(p->nodeid) &&
      (native_.empty() || native_.Find(e.nodeid) == nullptr)) {
    reply_cache_.PutEntry(p->nodeid, p->name, p->name_len, e);
    // The entry carries the node's attributes: a GETATTR right after the LOOKUP (stat) is a
    // hit too. An immutable handler answers both from the same inode.
    if (e.nodeid != 0) {
      fuse_attr_out a{};
      a.attr_valid = e.attr_valid;
      a.attr_valid_nsec = e.attr_valid_nsec;
      a.attr = e.attr;
      reply_cache_.PutAttr(e.nodeid, a);
    }
  }
  return CompleteWith(p, &e, sizeof(e));
}

int FuseSession::ReplyAttr(uint64_t token, const double* rec) {
  int rc;
  Pending* p = ClaimFor(token, "attr", IsGetattr, &rc);
  if (p == nullptr) return rc;
  fuse_attr_out a;
  const char* why = nullptr;
  if (!AttrOutFromRecord(rec, &a, &why)) return Garbage(p, "attr", why);
  if (cache_replies_ && p->opcode == FUSE_GETATTR && !writable_.Contains(p->nodeid)) {
    reply_cache_.PutAttr(p->nodeid, a);
  }
  return CompleteWith(p, &a, sizeof(a));
}

int FuseSession::ReplyOpen(uint64_t token, uint64_t fh, uint32_t open_flags,
                           std::shared_ptr<const readpath::ExtentTable> table) {
  int rc;
  Pending* p = ClaimFor(token, "open", IsOpen, &rc);
  if (p == nullptr) return rc;
  if (fh >= (1ull << 53)) return Garbage(p, "open", "fh must be an integer in [0, 2^53)");
  if (table != nullptr && p->opcode != FUSE_OPEN) {
    return Garbage(p, "open", "extent tables belong to files, not directories");
  }
  if (table != nullptr) {
    // Remembered before the handle is installed, so an OPEN racing this one already finds it.
    if (cache_replies_ && !writable_.Contains(p->nodeid)) {
      handles_.RememberOpen(p->nodeid, open_flags, table);
    }
    handles_.Set(fh, std::move(table));
  }
  fuse_open_out o{};
  o.fh = fh;
  o.open_flags = open_flags;
  return CompleteWith(p, &o, sizeof(o));
}

int FuseSession::ReplyStatfs(uint64_t token, const double* rec) {
  int rc;
  Pending* p = ClaimFor(token, "statfs", IsStatfs, &rc);
  if (p == nullptr) return rc;
  fuse_statfs_out st;
  const char* why = nullptr;
  if (!StatfsFromRecord(rec, &st, &why)) return Garbage(p, "statfs", why);
  return CompleteWith(p, &st, sizeof(st));
}

int FuseSession::ReplyData(uint64_t token, const uint8_t* data, size_t len) {
  int rc;
  Pending* p = ClaimFor(token, "data", IsData, &rc);
  if (p == nullptr) return rc;
  transport::SliceWriter out(p->req->out());
  if (out.capacity() < sizeof(fuse_out_header)) {
    counters_.reply_overflows.fetch_add(1, std::memory_order_relaxed);
    CompleteClaimed(p, 0, true);
    return 0;
  }
  const size_t room = out.capacity() - sizeof(fuse_out_header);
  if (p->opcode == FUSE_READ) {
    if (len > p->args[2]) return Garbage(p, "read data", "more bytes than the READ asked for");
    // A short reply is EOF for the kernel; clipping to the writable space is therefore safe.
    if (len > room) len = room;
  } else {
    if (len == 0) return Garbage(p, "readlink", "a symlink target cannot be empty");
    if (std::memchr(data, 0, len) != nullptr) {
      return Garbage(p, "readlink", "a symlink target cannot contain NUL");
    }
    if (len > room) {
      NLOG_DEBUG(kLog, "READLINK target of %zu bytes exceeds the %zu-byte reply space", len, room);
      CompleteClaimed(p, WriteError(*p->req, p->unique, ENAMETOOLONG), true);
      return 0;
    }
  }
  if (len > 0) out.Write(sizeof(fuse_out_header), data, len);
  CompleteClaimed(p, WriteHeader(*p->req, p->unique, len), false);
  return 0;
}

int FuseSession::ReplyXattr(uint64_t token, const uint8_t* data, size_t len) {
  int rc;
  Pending* p = ClaimFor(token, "xattr", IsXattr, &rc);
  if (p == nullptr) return rc;
  if (p->opcode == FUSE_LISTXATTR && len > 0 && data[len - 1] != 0) {
    return Garbage(p, "listxattr", "the name list must end with NUL");
  }
  const uint64_t size = p->args[0];
  uint32_t n;
  bool error = false;
  if (len > kXattrSizeMax) {
    n = WriteError(*p->req, p->unique, E2BIG);
    error = true;
  } else if (size == 0) {
    fuse_getxattr_out o{};
    o.size = static_cast<uint32_t>(len);
    n = WriteReply(*p->req, p->unique, &o, sizeof(o), &error);
  } else if (len > size) {
    n = WriteError(*p->req, p->unique, ERANGE);
    error = true;
  } else {
    n = WriteReply(*p->req, p->unique, data, len, &error);
    if (error) counters_.reply_overflows.fetch_add(1, std::memory_order_relaxed);
  }
  CompleteClaimed(p, n, error);
  return 0;
}

long FuseSession::ReplyReaddir(uint64_t token, const double* recs, size_t n, const uint8_t* names,
                               size_t names_len) {
  int rc;
  Pending* p = ClaimFor(token, "readdir", IsReaddir, &rc);
  if (p == nullptr) return rc;
  transport::SliceWriter out(p->req->out());
  if (out.capacity() < sizeof(fuse_out_header)) {
    counters_.reply_overflows.fetch_add(1, std::memory_order_relaxed);
    CompleteClaimed(p, 0, true);
    return 0;
  }
  size_t cap = out.capacity() - sizeof(fuse_out_header);
  if (cap > p->args[2]) cap = static_cast<size_t>(p->args[2]);
  if (cap > kMaxReplyPayload) cap = kMaxReplyPayload;
  if (t_pack.size() < cap) t_pack.resize((cap + 4095) & ~size_t{4095});
  size_t used = 0;
  const char* why = nullptr;
  long packed = PackDirents(recs, n, names, names_len, p->opcode == FUSE_READDIRPLUS, t_pack.data(),
                            cap, &used, &why);
  if (packed < 0) return Garbage(p, "readdir", why);
  if (used > 0) out.Write(sizeof(fuse_out_header), t_pack.data(), used);
  CompleteClaimed(p, WriteHeader(*p->req, p->unique, used), false);
  return packed;
}

int FuseSession::ReplyLseek(uint64_t token, uint64_t offset) {
  int rc;
  Pending* p = ClaimFor(token, "lseek", IsLseek, &rc);
  if (p == nullptr) return rc;
  if (offset >= (1ull << 53)) return Garbage(p, "lseek", "offset must be below 2^53");
  fuse_lseek_out o{offset};
  CompleteClaimed(p, WriteReply(*p->req, p->unique, &o, sizeof(o)), false);
  return 0;
}

int FuseSession::ReplyCreate(uint64_t token, const double* rec, uint64_t fh, uint32_t open_flags) {
  int rc;
  Pending* p = ClaimFor(token, "create", IsCreate, &rc);
  if (p == nullptr) return rc;
  if (fh >= (1ull << 53)) return Garbage(p, "create", "fh must be an integer in [0, 2^53)");
  struct {
    fuse_entry_out e;
    fuse_open_out o;
  } out{};
  static_assert(sizeof(out) == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  const char* why = nullptr;
  if (!EntryFromRecord(rec, true, &out.e, &why)) return Garbage(p, "create", why);
  if (out.e.nodeid == 0) return Garbage(p, "create", "a created file needs a node id");
  out.o.fh = fh;
  out.o.open_flags = open_flags;
  return CompleteWith(p, &out, sizeof(out));
}

int FuseSession::ReplyWrite(uint64_t token, uint64_t size) {
  int rc;
  Pending* p = ClaimFor(token, "write", IsWrite, &rc);
  if (p == nullptr) return rc;
  // args[3] is the WRITE's data length (session_writable.cc): more cannot have been written.
  if (size > p->args[3]) return Garbage(p, "write", "more bytes than the WRITE carried");
  fuse_write_out o{};
  o.size = static_cast<uint32_t>(size);
  return CompleteWith(p, &o, sizeof(o));
}

}  // namespace nydus::fuse
