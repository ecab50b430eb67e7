// Internal to the passthrough filesystem's .cc files: the per-request context the op handlers
// share, and constants more than one of them needs.
#pragma once

#include <fcntl.h>
#include <linux/fuse.h>

#include <cstdint>

#include "passthrough/passthrough_fs.h"
#include "transport/request.h"

namespace nydus::passthrough {

// One request while its handler runs (on the calling thread; never kept past Handle()).
struct PassthroughFs::Call {
  const fuse_in_header& in;
  transport::FuseRequest& req;
  OpArgs& a;
  uint32_t written = 0;   // reply bytes, set by Reply()
  bool error = false;     // the written reply is an error (a reply that did not fit)
  bool deferred = false;  // the handler parked the request (SETLKW)
};

// Guest open flags that mean the same on the host and are passed on; the rest (O_CREAT, O_EXCL,
// O_NOCTTY, O_PATH, O_TMPFILE, O_NOFOLLOW, the kernel-internal FMODE bits) are decided here.
inline constexpr int kPassedOpenFlags = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC |
                                        O_DIRECT | O_LARGEFILE | O_NOATIME | O_TRUNC | O_DIRECTORY;

// Bytes of an entry reply: the lookup reference it carries is only taken when it fits.
inline constexpr size_t kEntryReply = sizeof(fuse_out_header) + sizeof(fuse_entry_out);
inline constexpr size_t kCreateReply = kEntryReply + sizeof(fuse_open_out);

}  // namespace nydus::passthrough
