// Syntax checks for FUSE requests (style rule 1: syntax, then semantics, then dispatch).
//
// Decode() copies the in-header, the opcode's fixed argument struct and any name out of the
// readable slices into a DecodedRequest (private memory) and checks every size the guest or
// kernel controls: the header's len against the readable bytes, len against header + fixed args
// + extensions, names NUL-terminated within kMaxName, BATCH_FORGET counts against len. It never
// looks at session state (INIT done, handles known); the session does that on the copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fuse/abi.h"
#include "fuse/ops.h"
#include "transport/request.h"

namespace nydus::fuse {

// The decoded, private copy of a request. The union holds the opcode's fixed args, zero-filled
// past what the request carried (INIT from pre-7.36 kernels sends 16 bytes).
struct DecodedRequest {
  fuse_in_header in;
  union {
    fuse_init_in init;
    fuse_getattr_in getattr;
    fuse_open_in open;
    fuse_read_in read;
    fuse_release_in release;
    fuse_flush_in flush;
    fuse_fsync_in fsync;
    fuse_forget_in forget;
    fuse_batch_forget_in batch_forget;
    fuse_getxattr_in getxattr;
    fuse_access_in access;
    fuse_interrupt_in interrupt;
    fuse_lseek_in lseek;
    fuse_syncfs_in syncfs;
    uint8_t raw[64];
  } arg;
  uint32_t arg_len;   // bytes of fixed args actually present
  uint32_t name_len;  // bytes of name (without NUL); 0 when the op has none
  char name[kMaxName + 1];
  // For BATCH_FORGET: where the forget_one array starts (byte offset into the readable bytes)
  // and how many entries are really present (count clamped to what len covers).
  uint32_t forgets_offset;
  uint32_t forgets_count;
};

enum class DecodeStatus : uint8_t {
  kOk,
  kNoHeader,       // fewer than 40 readable bytes: nothing to reply to
  kBadLength,      // header len < 40 or > readable bytes
  kUnknownOpcode,  // header fine, opcode unknown (reply ENOSYS)
  kShortArgs,      // fixed args missing (reply EINVAL)
  kBadName,        // no NUL, empty, or longer than kMaxName (reply EINVAL / ENAMETOOLONG)
  kNameTooLong,
};

// Decodes `request`'s readable bytes into *out. On kOk every field is valid; on the other statuses
// out->in is valid (except kNoHeader) so the caller can reply to `unique`.
DecodeStatus Decode(const transport::FuseRequest& request, DecodedRequest* out);

}  // namespace nydus::fuse
