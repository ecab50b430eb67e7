// The compact formats requests and replies use to cross between the session and its handler
// (TypeScript, through the Node binding; or a C++ test). Plain numbers in Float64Array-sized
// slots, so the JS side reads and writes typed arrays instead of objects; integers are exact up
// to 2^53, and every value coming back is validated before it reaches the wire.
//
// Upcall arena (one per batch, filled by FuseSession::DrainUpcalls):
//   records: kUpcallStride doubles per record
//     [0] token  [1] opcode  [2] nodeid  [3] uid  [4] gid  [5] pid
//     [6..9] a0..a3 (per opcode, below)  [10] byte offset  [11] byte length (in `bytes`)
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
//   entry  (kEntryStride): [0] nodeid [1] generation [2] entry_valid s [3] attr_valid s, then the
//          attr at kAttrBase: ino size blocks atime atimensec mtime mtimensec ctime ctimensec
//          mode nlink uid gid rdev blksize flags
//   attr: the same record; nodeid/generation/entry_valid are ignored.
//   statfs (kStatfsStride): blocks bfree bavail files ffree bsize namelen frsize
//   dirent (kDirentStride): the entry record (plus only; plain readdir uses ino and mode from the
//          attr part) then [20] off (cookie after this entry) [21] name byte offset
//          [22] name length [23] d_type (or -1: derive from mode)
#pragma once

#include <cstddef>
#include <cstdint>

namespace nydus::fuse {

inline constexpr size_t kUpcallStride = 12;
inline constexpr uint32_t kUpcallReadMiss = 4097;
inline constexpr uint32_t kUpcallForget = 4098;
inline constexpr uint32_t kUpcallInit = 4099;
inline constexpr uint32_t kUpcallDestroy = 4100;
inline constexpr uint32_t kUpcallClosed = 4101;
inline constexpr uint32_t kDestroyRequest = 0;
inline constexpr uint32_t kDestroyReset = 1;

inline constexpr size_t kAttrBase = 4;
inline constexpr size_t kEntryStride = 20;
inline constexpr size_t kStatfsStride = 8;
inline constexpr size_t kDirentStride = 24;
inline constexpr size_t kDirentOff = 20;
inline constexpr size_t kDirentNameOffset = 21;
inline constexpr size_t kDirentNameLength = 22;
inline constexpr size_t kDirentType = 23;

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
