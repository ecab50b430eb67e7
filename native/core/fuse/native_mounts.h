// The native filesystems attached to one FUSE session (fuse/native_fs.h), each owning a range
// of node ids [lo, hi): the session asks Find() for every request and serves the owner's inline.
//
// Lifetime: Find() returns a shared reference that the request holds while it is served, so a
// Detach() takes effect for the next request while the requests already inside finish; the
// filesystem is freed by whichever of them drops the last reference (a parked SETLKW is ended
// with EIO by the filesystem's destructor).
//
// Threading: Find/All from any number of transport threads; Attach/Detach from the owner's
// thread. mu_ is a reader-writer lock: requests only read. count_ lets a session with no native
// filesystem skip the lock entirely (a RAFS-only daemon pays one relaxed load per request).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <vector>

#include "fuse/native_fs.h"

namespace nydus::fuse {

class NativeMounts {
 public:
  struct Mount {
    uint64_t lo = 0;
    uint64_t hi = 0;
    std::shared_ptr<NativeFs> fs;
    // A node id whose operation-counter slot (fop_counters.h) counts this filesystem's requests.
    uint64_t count_node = 0;
    // Negotiate the connection-wide zero-message OPEN/OPENDIR for it: only when it is the only
    // filesystem on the connection (mounted at the root), since the kernel then stops sending
    // OPEN for every filesystem the session serves.
    bool whole_connection = false;
  };

  bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }
  // False when [lo, hi) overlaps a filesystem already attached (nothing changes).
  bool Attach(Mount m);
  // The filesystem attached with range start `lo`, removed; null when none.
  std::shared_ptr<NativeFs> Detach(uint64_t lo);
  // The owner of `nodeid`, or null. *m (optional) gets a copy of its record.
  std::shared_ptr<NativeFs> Find(uint64_t nodeid, Mount* m = nullptr) const;
  // The filesystem attached with range start `lo` (the binding's root-entry query).
  std::shared_ptr<NativeFs> AtStart(uint64_t lo) const;
  std::vector<Mount> All() const;

 private:
  mutable std::shared_mutex mu_;
  std::vector<Mount> mounts_;  // guarded by mu_
  // ORDERING: relaxed. A request racing an Attach may miss the new filesystem; the mount table
  // makes the mount visible (the pseudo parent's LOOKUP) only after Attach returns.
  std::atomic<size_t> count_{0};
};

}  // namespace nydus::fuse
