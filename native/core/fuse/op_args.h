// Argument syntax for the requests of writable filesystems: the native passthrough and the
// session's writable route (session_writable.cc) (style rule 1: syntax, then semantics, then
// dispatch). In fuse/ so that both use it without a folder cycle.
//
// The shared decoder (fuse/decode.h) validates the in-header against the readable bytes and, for
// a read-only RAFS session, leaves every mutating op opaque. The passthrough needs all of them, so
// this decoder reads each op's fixed struct and trailing strings itself from the request's
// readable slices, into private memory (the guest may rewrite its buffers at any time): one name
// (LOOKUP, MKDIR, ...), two names (RENAME/RENAME2: old and new name; SYMLINK: entry name and
// link target), a name plus a value (SETXATTR), or a payload it does not copy (WRITE: described
// as an offset into the readable bytes, moved to the host file with pwritev).
//
// Neighbours: passthrough_fs.cc owns the per-op table that picks a Tail; fuse/abi.h pins the
// struct sizes. Nothing here touches the host.
#pragma once

#include <linux/fuse.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "transport/request.h"

namespace nydus::fuse {

// What follows an op's fixed argument struct.
enum class Tail : uint8_t {
  kNone,       // nothing (trailing bytes are ignored, as the kernel may pad)
  kName,       // one NUL-terminated entry name
  kTwoNames,   // two NUL-terminated strings: name + new name, or name + symlink target
  kNameValue,  // xattr name, then `size` value bytes (SETXATTR)
  kPayload,    // data bytes, not copied (WRITE)
  kForgets,    // fuse_forget_one[count] (BATCH_FORGET)
};

struct ArgSyntax {
  uint16_t fixed;  // bytes of the fixed struct
  Tail tail;
};

// Limits on guest strings, as Linux has them: entry names are checked against NAME_MAX by the
// host file system (ENAMETOOLONG); we refuse anything longer than FUSE's 1024 outright. Symlink
// targets up to PATH_MAX - 1, xattr names up to XATTR_NAME_MAX, values up to XATTR_SIZE_MAX.
inline constexpr size_t kMaxNameBytes = 1024;
inline constexpr size_t kMaxTargetBytes = 4095;
inline constexpr size_t kMaxXattrName = 255;
inline constexpr size_t kMaxXattrValue = 65536;

// The decoded, private copy of one request's arguments. Reused per thread: every Decode call
// resets it. The string views point into `storage_`.
struct OpArgs {
  union {
    fuse_forget_in forget;
    fuse_getattr_in getattr;
    fuse_setattr_in setattr;
    fuse_mknod_in mknod;
    fuse_mkdir_in mkdir;
    fuse_rename_in rename;
    fuse_rename2_in rename2;
    fuse_link_in link;
    fuse_open_in open;
    fuse_create_in create;
    fuse_read_in read;
    fuse_write_in write;
    fuse_release_in release;
    fuse_flush_in flush;
    fuse_fsync_in fsync;
    fuse_setxattr_in setxattr;
    fuse_getxattr_in getxattr;
    fuse_access_in access;
    fuse_lk_in lk;
    fuse_batch_forget_in batch_forget;
    fuse_fallocate_in fallocate;
    fuse_lseek_in lseek;
    fuse_copy_file_range_in copy_file_range;
    fuse_syncfs_in syncfs;
    uint8_t raw[88];
  } a;
  static_assert(sizeof(fuse_setattr_in) == 88, "the largest fixed struct");
  const char* name = nullptr;  // NUL-terminated, name_len bytes before the NUL
  size_t name_len = 0;
  const char* name2 = nullptr;
  size_t name2_len = 0;
  const uint8_t* value = nullptr;  // SETXATTR value
  size_t value_len = 0;
  size_t payload_off = 0;  // WRITE: offset of the data in the readable bytes
  size_t payload_len = 0;
  const fuse_forget_one* forgets = nullptr;  // BATCH_FORGET, copied
  size_t forgets_count = 0;

  std::vector<uint8_t> storage_;
};

// Decodes the arguments of `request` (whose header `in` was already validated: in.len within the
// readable bytes) per `syntax`. Returns 0, or the errno to answer: EINVAL for a short struct or an
// unterminated or empty string, ENAMETOOLONG for a name or target over its limit, ERANGE for an
// xattr name over 255 bytes, E2BIG for an xattr value over 64 KiB.
int DecodeArgs(const fuse_in_header& in, const transport::FuseRequest& request, ArgSyntax syntax,
               OpArgs* out);

// Fills `iov` with the slices covering [pos, pos+n) of `slices`. Returns the number of entries
// (<= max), or -1 when the range is outside the slices. When more than `max` entries would be
// needed, fills `max` and sets *covered to the bytes they cover (otherwise *covered = n).
int SliceIovecs(std::span<const transport::IoSlice> slices, size_t pos, size_t n, struct iovec* iov,
                int max, size_t* covered);

}  // namespace nydus::fuse
