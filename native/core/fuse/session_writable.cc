// FuseSession: mutating requests on the nodes of a writable range (writable_ranges.h), decoded
// here and sent to the handler. Everything the guest controls is checked before it is copied:
// the fixed struct's size against the request, every string NUL-terminated within its limit,
// WRITE and SETXATTR sizes against the bytes the request carries (passthrough/pt_args.h, the
// same decoder the native passthrough uses). The handler gets private copies only.
//
// Payload (the upcall's bytes, upcall.h): a0 little-endian f64 numbers (per opcode, below), then
// the first string (a1 bytes, no NUL), the second string (a2 bytes), the data (a3 bytes).
//   SETATTR      valid fh size atime atimensec mtime mtimensec mode uid gid
//   MKNOD        mode rdev umask                 name
//   MKDIR        mode umask                      name
//   SYMLINK                                      name, target
//   UNLINK/RMDIR                                 name
//   RENAME(2)    newdir flags                    old name, new name
//   LINK         oldnodeid                       new name
//   CREATE       flags mode umask open_flags     name
//   WRITE        fh offset size write_flags                      data
//   SETXATTR     size flags                      name            value
//   REMOVEXATTR                                  name
//   FALLOCATE    fh offset length mode
#include <cstring>

#include "common/log.h"
#include "fuse/session.h"
#include "passthrough/pt_args.h"
#include "transport/slices.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";
using passthrough::ArgSyntax;
using passthrough::Tail;

// FUSE_COMPAT_SETXATTR_IN_SIZE: without FUSE_SETXATTR_EXT the kernel sends size + flags only.
constexpr uint16_t kCompatSetxattrIn = 8;

// The argument syntax of a mutating opcode, or false for one the handler is not given.
bool SyntaxOf(uint32_t op, bool setxattr_ext, ArgSyntax* syn) {
  switch (op) {
    case FUSE_SETATTR:
      *syn = {sizeof(fuse_setattr_in), Tail::kNone};
      return true;
    case FUSE_MKNOD:
      *syn = {sizeof(fuse_mknod_in), Tail::kName};
      return true;
    case FUSE_MKDIR:
      *syn = {sizeof(fuse_mkdir_in), Tail::kName};
      return true;
    case FUSE_SYMLINK:
      *syn = {0, Tail::kTwoNames};
      return true;
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_REMOVEXATTR:
      *syn = {0, Tail::kName};
      return true;
    case FUSE_RENAME:
      *syn = {sizeof(fuse_rename_in), Tail::kTwoNames};
      return true;
    case FUSE_RENAME2:
      *syn = {sizeof(fuse_rename2_in), Tail::kTwoNames};
      return true;
    case FUSE_LINK:
      *syn = {sizeof(fuse_link_in), Tail::kName};
      return true;
    case FUSE_CREATE:
      *syn = {sizeof(fuse_create_in), Tail::kName};
      return true;
    case FUSE_WRITE:
      *syn = {sizeof(fuse_write_in), Tail::kPayload};
      return true;
    case FUSE_SETXATTR:
      *syn = {setxattr_ext ? static_cast<uint16_t>(sizeof(fuse_setxattr_in)) : kCompatSetxattrIn,
              Tail::kNameValue};
      return true;
    case FUSE_FALLOCATE:
      *syn = {sizeof(fuse_fallocate_in), Tail::kNone};
      return true;
    default:
      return false;
  }
}

// The numbers of one request, in payload order (see the table above). Returns how many.
size_t NumbersOf(uint32_t op, const passthrough::OpArgs& a, uint64_t* v) {
  switch (op) {
    case FUSE_SETATTR: {
      const fuse_setattr_in& s = a.a.setattr;
      const uint64_t n[] = {s.valid, s.fh,        s.size, s.atime, s.atimensec,
                            s.mtime, s.mtimensec, s.mode, s.uid,   s.gid};
      std::memcpy(v, n, sizeof(n));
      return 10;
    }
    case FUSE_MKNOD:
      v[0] = a.a.mknod.mode, v[1] = a.a.mknod.rdev, v[2] = a.a.mknod.umask;
      return 3;
    case FUSE_MKDIR:
      v[0] = a.a.mkdir.mode, v[1] = a.a.mkdir.umask;
      return 2;
    case FUSE_RENAME:
      v[0] = a.a.rename.newdir, v[1] = 0;
      return 2;
    case FUSE_RENAME2:
      v[0] = a.a.rename2.newdir, v[1] = a.a.rename2.flags;
      return 2;
    case FUSE_LINK:
      v[0] = a.a.link.oldnodeid;
      return 1;
    case FUSE_CREATE:
      v[0] = a.a.create.flags, v[1] = a.a.create.mode, v[2] = a.a.create.umask;
      v[3] = a.a.create.open_flags;
      return 4;
    case FUSE_WRITE:
      v[0] = a.a.write.fh, v[1] = a.a.write.offset, v[2] = a.a.write.size;
      v[3] = a.a.write.write_flags;
      return 4;
    case FUSE_SETXATTR:
      v[0] = a.a.setxattr.size, v[1] = a.a.setxattr.flags;
      return 2;
    case FUSE_FALLOCATE:
      v[0] = a.a.fallocate.fh, v[1] = a.a.fallocate.offset, v[2] = a.a.fallocate.length;
      v[3] = a.a.fallocate.mode;
      return 4;
    default:
      return 0;
  }
}

thread_local passthrough::OpArgs t_args;

}  // namespace

void FuseSession::SetWritable(uint64_t lo, uint64_t hi, bool on) {
  writable_.Set(lo, hi, on);
  // Answers remembered while the range was read-only would outlive the first change.
  if (on) reply_cache_.InvalidateNodes(lo, hi);
}

void FuseSession::HandleWritable(Request& r) {
  const uint32_t op = r.d.in.opcode;
  if (!writable_.Contains(r.d.in.nodeid)) {
    HandleNativeDefault(r);  // EROFS
    return;
  }
  bool setxattr_ext;
  {
    std::lock_guard lock(init_mu_);
    setxattr_ext = (granted_flags_ & FUSE_SETXATTR_EXT) != 0;
  }
  ArgSyntax syn{};
  if (!SyntaxOf(op, setxattr_ext, &syn) || !options_.handler_ops[op]) {
    // COPY_FILE_RANGE and TMPFILE: the kernel falls back to reads and writes (or EOPNOTSUPP).
    ReplyErrorInline(r, ENOSYS);
    return;
  }
  passthrough::OpArgs& a = t_args;
  const int err = passthrough::DecodeArgs(r.d.in, *r.req, syn, &a);
  if (err != 0) {
    NLOG_DEBUG(kLog, "malformed %s request: errno %d", r.info->name, err);
    ReplyErrorInline(r, err);
    return;
  }
  if (op == FUSE_WRITE && a.payload_len > options_.max_write) {
    ReplyErrorInline(r, EINVAL);
    return;
  }
  uint64_t nums[10];
  const size_t nnum = NumbersOf(op, a, nums);
  Pending* p = NewPending(r);
  if (p == nullptr) return;
  const size_t data_len = op == FUSE_WRITE ? a.payload_len : a.value_len;
  const size_t total = nnum * 8 + a.name_len + a.name2_len + data_len;
  p->payload.resize(total);
  uint8_t* out = p->payload.data();
  for (size_t i = 0; i < nnum; ++i) {
    const double d = RecordNumber(nums[i]);
    std::memcpy(out + i * 8, &d, 8);
  }
  size_t at = nnum * 8;
  if (a.name_len > 0) std::memcpy(out + at, a.name, a.name_len);
  at += a.name_len;
  if (a.name2_len > 0) std::memcpy(out + at, a.name2, a.name2_len);
  at += a.name2_len;
  if (op == FUSE_WRITE) {
    transport::SliceReader reader(r.req->in(), r.d.in.len);
    if (!reader.Skip(a.payload_off) || !reader.Copy(out + at, data_len)) {
      // The decoder checked the size against len; the slices cover len (Decode checked that).
      pending_.Release(p);
      ReplyErrorInline(r, EINVAL);
      return;
    }
  } else if (data_len > 0) {
    std::memcpy(out + at, a.value, data_len);
  }
  p->args[0] = nnum;
  p->args[1] = a.name_len;
  p->args[2] = a.name2_len;
  p->args[3] = data_len;
  PublishUpcall(p);
}

}  // namespace nydus::fuse
