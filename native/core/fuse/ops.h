// The opcode table (style rule 3): one row per FUSE opcode with its name (for logs and metrics),
// its argument syntax (for the decoder) and its route (for the session's dispatch). Opcodes
// outside the table, or rows without a name, are answered ENOSYS.
#pragma once

#include <cstdint>

namespace nydus::fuse {

// How an opcode's arguments are laid out after the fixed struct.
enum class ArgTail : uint8_t {
  kNone,     // nothing after the fixed args (trailing bytes are ignored)
  kName,     // one NUL-terminated name
  kForgets,  // fuse_forget_one[count] (BATCH_FORGET), read by the session
  kOpaque,   // not parsed (ops answered EROFS or ENOSYS without looking at their args)
};

struct OpSyntax {
  uint16_t fixed;      // bytes of the fixed argument struct (0 for none)
  uint16_t min_fixed;  // fewer bytes than this is malformed (INIT from pre-7.36 kernels: 16)
  ArgTail tail;
};

// What the session does with a request.
enum class Route : uint8_t {
  kEnosys,       // not implemented by design (locks, ioctl, poll, bmap, DAX mappings)
  kWritable,     // mutates the tree: EROFS, unless the node is in a writable range (then decoded
                 // by the session and sent to the handler; session_writable.cc)
  kInit,         // negotiated natively
  kDestroy,      // natively: state reset, then JS is told
  kForget,       // natively: no reply; forwarded to JS in batches
  kBatchForget,  // same, many at once (/dev/fuse only)
  kInterrupt,    // natively: no reply (we never block a request on anything interruptible)
  kNoReply,      // NOTIFY_REPLY: the kernel expects no answer
  kSyncfs,       // natively ENOSYS: the kernel then stops sending it (sync_fs = 0)
  kOpen,         // write-intent flags answered EROFS natively, otherwise to the handler
  kRead,         // the native fast path when an extent table exists, otherwise to the handler
  kRelease,      // drops the native extent table, then to the handler
  kUpcall,       // to the TypeScript handler
};

struct OpInfo {
  const char* name;  // spec spelling without the FUSE_ prefix
  OpSyntax syntax;
  Route route;
};

// The row for `opcode`, or nullptr when the opcode is unknown.
const OpInfo* OpInfoOf(uint32_t opcode);
// Name for logs ("UNKNOWN" for opcodes outside the table).
const char* OpName(uint32_t opcode);

}  // namespace nydus::fuse
