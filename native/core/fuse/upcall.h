// The compact formats requests and replies use to cross between the session and its handler
// (TypeScript, through the Node binding; or a C++ test). Plain numbers in Float64Array-sized
// slots, so the JS side reads and writes typed arrays instead of objects; integers are exact up
// to 2^53, and every value coming back is validated before it reaches the wire. The slot of each
// field, the strides and the upcall kinds are defined once in abi/js_abi.h (abi::UpcallRecord,
// abi::EntryRecord, ...); this header says what the fields mean.
//
// Upcall arena (one per batch, filled by FuseSession::DrainUpcalls):
//   records: abi::UpcallRecord::kStride doubles per record: token, opcode, nodeid, uid, gid,
//     pid, a0..a3 (per opcode, below), then the byte offset and length of the record's bytes
//   bytes: names and payload arrays; payload arrays start 8-byte aligned.
//
//   opcode              a0          a1             a2            a3        bytes
//   LOOKUP                                                                 name
//   GETATTR             fh or -1 (no FUSE_GETATTR_FH)
//   OPEN, OPENDIR       flags       open_flags
//   READ                fh          offset         size          flags
//   RELEASE(DIR)        fh          flags          release_flags
//   READDIR(PLUS)       fh          offset         size
//   GETXATTR            size                                               name
//   LISTXATTR           size
//   ACCESS              mask
//   FLUSH               fh
//   FSYNC(DIR)          fh          fsync_flags
//   LSEEK               fh          offset         whence
//   kUpcallReadMiss     fh          offset         size          nchunks   u32 pairs (slot, index)
//   kUpcallForget       count                                              f64 pairs (nodeid, n)
//   kUpcallInit         minor       kernel minor   reinit (0/1)  transport
//   kUpcallDestroy      reason (kDestroyRequest / kDestroyReset)
//   kUpcallClosed       errno (0 = stopped, ENODEV = unmounted)
// Offsets above 2^53 (READ/LSEEK from hostile guests) are clamped to 2^53: no file is that big.
// Notifications (forget, init, destroy, closed) carry token 0 and take no reply.
//
// Reply records (the handler's answer; read by FuseSession::Reply*):
//   entry (abi::EntryRecord): nodeid, generation, entry_valid and attr_valid in seconds, then the
//          attributes (struct fuse_attr, field by field)
//   attr: the same record; nodeid/generation/entry_valid are ignored.
//   statfs (abi::StatfsRecord): blocks bfree bavail files ffree bsize namelen frsize
//   dirent (abi::DirentRecord): the entry record (plus only; plain readdir uses ino and mode from
//          the attributes) then off (cookie after this entry), the name's byte offset and length,
//          and d_type (or -1: derive from mode)
#pragma once

#include <cstddef>
#include <cstdint>

#include "abi/js_abi.h"

namespace nydus::fuse {

inline constexpr uint32_t kUpcallReadMiss = abi::kUpcallReadMiss;
inline constexpr uint32_t kUpcallForget = abi::kUpcallForget;
inline constexpr uint32_t kUpcallInit = abi::kUpcallInit;
inline constexpr uint32_t kUpcallDestroy = abi::kUpcallDestroy;
inline constexpr uint32_t kUpcallClosed = abi::kUpcallClosed;

// A uint64 as a record number: exact below 2^53; larger values (offsets from hostile guests)
// become 2^53, which is never a valid id, offset or handle.
inline double RecordNumber(uint64_t v) {
  return v >= (1ull << 53) ? 9007199254740992.0 : static_cast<double>(v);
}

// Memory a batch is encoded into; owned by the caller (the binding lends a shared ArrayBuffer).
struct UpcallArena {
  double* records = nullptr;
  size_t max_records = 0;
  uint8_t* bytes = nullptr;
  size_t bytes_cap = 0;
  // Filled by DrainUpcalls:
  size_t count = 0;
  size_t bytes_used = 0;
};

// Told (on any thread) that upcalls are waiting; the owner then calls DrainUpcalls on its own
// thread until it returns 0. Must not block and must not call back into the session.
class UpcallListener {
 public:
  virtual ~UpcallListener() = default;
  virtual void OnUpcallsPending() = 0;
};

}  // namespace nydus::fuse
