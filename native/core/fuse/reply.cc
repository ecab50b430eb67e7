#include "fuse/reply.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "abi/js_abi.h"
#include "transport/slices.h"

namespace nydus::fuse {
namespace {

using E = abi::EntryRecord;
using D = abi::DirentRecord;
using St = abi::StatfsRecord;

constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 - 1

bool UInt(double v, double max, uint64_t* out) {
  if (!(v >= 0) || v > max || std::floor(v) != v) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

bool U32(double v, uint32_t* out) {
  uint64_t x;
  if (!UInt(v, 4294967295.0, &x)) return false;
  *out = static_cast<uint32_t>(x);
  return true;
}

// Timestamps are signed seconds on the wire (the kernel casts the u64 back to s64).
bool Seconds(double v, uint64_t* out) {
  if (!(v >= -kMaxSafe && v <= kMaxSafe) || std::floor(v) != v) return false;
  *out = static_cast<uint64_t>(static_cast<int64_t>(v));
  return true;
}

bool Nanos(double v, uint32_t* out) {
  uint64_t x;
  if (!UInt(v, 999999999.0, &x)) return false;
  *out = static_cast<uint32_t>(x);
  return true;
}

bool ValidType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

}  // namespace

uint32_t WriteError(const transport::FuseRequest& req, uint64_t unique, int err) {
  transport::SliceWriter w(req.out());
  if (w.capacity() < sizeof(fuse_out_header)) return 0;
  if (err <= 0 || err > kMaxErrno) err = EIO;
  fuse_out_header h{sizeof(fuse_out_header), -err, unique};
  w.Write(0, &h, sizeof(h));
  return sizeof(h);
}

uint32_t WriteReply(const transport::FuseRequest& req, uint64_t unique, const void* payload,
                    size_t len, bool* overflow) {
  transport::SliceWriter w(req.out());
  if (len > kMaxReplyPayload + 4096 || w.capacity() < sizeof(fuse_out_header) + len) {
    if (overflow != nullptr) *overflow = true;
    return WriteError(req, unique, EIO);
  }
  if (len > 0) w.Write(sizeof(fuse_out_header), payload, len);
  fuse_out_header h{static_cast<uint32_t>(sizeof(fuse_out_header) + len), 0, unique};
  w.Write(0, &h, sizeof(h));
  return h.len;
}

uint32_t WriteHeader(const transport::FuseRequest& req, uint64_t unique, size_t payload_len) {
  transport::SliceWriter w(req.out());
  fuse_out_header h{static_cast<uint32_t>(sizeof(fuse_out_header) + payload_len), 0, unique};
  if (w.capacity() < h.len) return WriteError(req, unique, EIO);
  w.Write(0, &h, sizeof(h));
  return h.len;
}

bool TimeoutFromSeconds(double s, uint64_t* sec, uint32_t* nsec) {
  if (!(s >= 0)) return false;
  if (s >= kMaxSafe) {
    *sec = static_cast<uint64_t>(kMaxSafe);
    *nsec = 0;
    return true;
  }
  double whole = std::floor(s);
  *sec = static_cast<uint64_t>(whole);
  double ns = std::round((s - whole) * 1e9);
  *nsec = ns >= 999999999.0 ? 999999999u : static_cast<uint32_t>(ns);
  return true;
}

bool AttrFromRecord(const double* rec, fuse_attr* out, const char** why) {
  std::memset(out, 0, sizeof(*out));
  if (!UInt(rec[E::kIno], kMaxSafe, &out->ino))
    return *why = "attr.ino is not an integer in [0, 2^53)", false;
  // The kernel refuses sizes above LLONG_MAX with EIO; 2^53 is our exactness limit anyway.
  if (!UInt(rec[E::kSize], kMaxSafe, &out->size))
    return *why = "attr.size is not an integer in [0, 2^53)", false;
  if (!UInt(rec[E::kBlocks], kMaxSafe, &out->blocks))
    return *why = "attr.blocks is not a non-negative integer", false;
  if (!Seconds(rec[E::kAtime], &out->atime) || !Nanos(rec[E::kAtimeNsec], &out->atimensec)) {
    return *why = "attr.atime is not an integer second with nanoseconds in [0, 1e9)", false;
  }
  if (!Seconds(rec[E::kMtime], &out->mtime) || !Nanos(rec[E::kMtimeNsec], &out->mtimensec)) {
    return *why = "attr.mtime is not an integer second with nanoseconds in [0, 1e9)", false;
  }
  if (!Seconds(rec[E::kCtime], &out->ctime) || !Nanos(rec[E::kCtimeNsec], &out->ctimensec)) {
    return *why = "attr.ctime is not an integer second with nanoseconds in [0, 1e9)", false;
  }
  if (!U32(rec[E::kMode], &out->mode) || !ValidType(out->mode)) {
    return *why = "attr.mode is not a uint32 with a valid file type", false;
  }
  if (!U32(rec[E::kNlink], &out->nlink) || !U32(rec[E::kUid], &out->uid) ||
      !U32(rec[E::kGid], &out->gid) || !U32(rec[E::kRdev], &out->rdev) ||
      !U32(rec[E::kBlksize], &out->blksize) || !U32(rec[E::kFlags], &out->flags)) {
    return *why = "attr.nlink/uid/gid/rdev/blksize/flags must be uint32", false;
  }
  return true;
}

bool EntryFromRecord(const double* rec, bool allow_negative, fuse_entry_out* out,
                     const char** why) {
  std::memset(out, 0, sizeof(*out));
  if (!UInt(rec[E::kNodeid], kMaxSafe, &out->nodeid))
    return *why = "entry.nodeid is not an integer in [0, 2^53)", false;
  if (out->nodeid == 0 && !allow_negative) return *why = "entry.nodeid is 0", false;
  if (!UInt(rec[E::kGeneration], kMaxSafe, &out->generation))
    return *why = "entry.generation is not a non-negative integer", false;
  if (!TimeoutFromSeconds(rec[E::kEntryValid], &out->entry_valid, &out->entry_valid_nsec) ||
      !TimeoutFromSeconds(rec[E::kAttrValid], &out->attr_valid, &out->attr_valid_nsec)) {
    return *why = "entry timeouts must be non-negative numbers of seconds", false;
  }
  if (out->nodeid == 0) {
    // A negative entry carries no attributes; only entry_valid matters to the kernel.
    return true;
  }
  return AttrFromRecord(rec, &out->attr, why);
}

bool AttrOutFromRecord(const double* rec, fuse_attr_out* out, const char** why) {
  std::memset(out, 0, sizeof(*out));
  if (!TimeoutFromSeconds(rec[E::kAttrValid], &out->attr_valid, &out->attr_valid_nsec)) {
    return *why = "attr timeout must be a non-negative number of seconds", false;
  }
  return AttrFromRecord(rec, &out->attr, why);
}

bool StatfsFromRecord(const double* rec, fuse_statfs_out* out, const char** why) {
  std::memset(out, 0, sizeof(*out));
  fuse_kstatfs& st = out->st;
  if (!UInt(rec[St::kBlocks], kMaxSafe, &st.blocks) ||
      !UInt(rec[St::kBfree], kMaxSafe, &st.bfree) ||
      !UInt(rec[St::kBavail], kMaxSafe, &st.bavail) ||
      !UInt(rec[St::kFiles], kMaxSafe, &st.files) || !UInt(rec[St::kFfree], kMaxSafe, &st.ffree)) {
    return *why = "statfs counts must be non-negative integers", false;
  }
  if (!U32(rec[St::kBsize], &st.bsize) || !U32(rec[St::kNamelen], &st.namelen) ||
      !U32(rec[St::kFrsize], &st.frsize)) {
    return *why = "statfs bsize/namelen/frsize must be uint32", false;
  }
  return true;
}

long PackDirents(const double* recs, size_t n, const uint8_t* names, size_t names_len, bool plus,
                 uint8_t* dst, size_t cap, size_t* used, const char** why) {
  size_t pos = 0;
  long packed = 0;
  for (size_t i = 0; i < n; ++i) {
    const double* r = recs + i * D::kStride;
    uint64_t name_off, name_len, off;
    if (!UInt(r[D::kNameOffset], kMaxSafe, &name_off) ||
        !UInt(r[D::kNameLength], kMaxName, &name_len) || name_len == 0 || name_off > names_len ||
        name_len > names_len - name_off) {
      return *why = "dirent name is empty, longer than 1024 bytes or outside the name buffer", -1;
    }
    const uint8_t* name = names + name_off;
    if (std::memchr(name, '/', name_len) != nullptr || std::memchr(name, 0, name_len) != nullptr) {
      return *why = "dirent name contains '/' or NUL", -1;
    }
    if (!UInt(r[D::kOff], kMaxSafe, &off) || off == 0) {
      return *why = "dirent offset (the cookie after the entry) must be an integer in [1, 2^53)",
             -1;
    }
    fuse_entry_out entry{};
    uint32_t mode = 0;
    uint64_t ino = 0;
    if (plus) {
      if (!EntryFromRecord(r, true, &entry, why)) return -1;
      // nodeid 0 means "no entry information": the kernel only lists the name.
      if (entry.nodeid != 0) {
        mode = entry.attr.mode;
        ino = entry.attr.ino;
      } else if (!UInt(r[D::kIno], kMaxSafe, &ino) || !U32(r[D::kMode], &mode)) {
        return *why = "dirent ino/mode invalid", -1;
      }
    } else if (!UInt(r[D::kIno], kMaxSafe, &ino) || !U32(r[D::kMode], &mode)) {
      return *why = "dirent ino must be an integer and mode a uint32", -1;
    }
    uint32_t type;
    if (r[D::kType] == -1) {
      type = (mode & S_IFMT) >> 12;
    } else if (!U32(r[D::kType], &type) || type > 15) {
      return *why = "dirent type must be a DT_* value (0..15) or -1", -1;
    }
    const size_t head = plus ? abi::kDirentPlusHeader : abi::kDirentHeader;
    const size_t rec_len = FUSE_DIRENT_ALIGN(head + name_len);
    if (rec_len > cap - pos) break;
    uint8_t* p = dst + pos;
    if (plus) {
      std::memcpy(p, &entry, sizeof(entry));
      p += sizeof(entry);
    }
    fuse_dirent d{ino, off, static_cast<uint32_t>(name_len), type};
    std::memcpy(p, &d, FUSE_NAME_OFFSET);
    std::memcpy(p + FUSE_NAME_OFFSET, name, name_len);
    const size_t pad = rec_len - head - name_len;
    if (pad > 0) std::memset(p + FUSE_NAME_OFFSET + name_len, 0, pad);
    pos += rec_len;
    ++packed;
  }
  *used = pos;
  return packed;
}

}  // namespace nydus::fuse
