// The open file handles the session itself knows about:
// - the extent table per handle (the READ fast path looks its handle up here on every READ),
//   installed by the handler's OPEN answer or SetExtents and dropped at RELEASE;
// - the handles the session makes for OPENs it answers itself, and the cached OPEN answers
//   (per node: the open flags and extent table of the handler's first answer) they are made
//   from. Only for immutable handlers (SessionOptions::immutable), whose answers never change.
//
// Handles the session makes count up from kNativeFhBase: the handler's handles are below 2^53
// (ReplyOpen enforces it), so the two never meet, and a RELEASE of a session-made handle is
// answered by the session without an upcall (the handler never saw it).
//
// A handler serving several filesystems (a pseudo root with mounts) gives each a range of node
// ids and its own blob slots; when one goes away, Invalidate() forgets the cached OPENs of its
// range and drops every handle reading its blobs, so no READ reaches a blob slot that is about to
// be given to another filesystem.
//
// Threading: any thread; one reader/writer lock over both maps (READs take it shared; installs,
// removals and cached OPENs, which install a handle, exclusive). A cached OPEN makes its handle
// under the same exclusive hold as its lookup, so an Invalidate() either drops that handle or
// the OPEN misses the forgotten answer. Tables are destroyed outside the lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <unordered_map>

#include "readpath/extent_table.h"

namespace nydus::fuse {

class HandleTable {
 public:
  static constexpr uint64_t kNativeFhBase = 1ull << 53;
  // Cached OPEN answers kept before the cache is emptied and refilled (as the reply cache).
  static constexpr size_t kMaxCachedOpens = 32768;

  HandleTable() = default;
  HandleTable(const HandleTable&) = delete;
  HandleTable& operator=(const HandleTable&) = delete;

  static bool IsNative(uint64_t fh) { return fh >= kNativeFhBase; }

  // Installs (or replaces) the table of `fh`.
  void Set(uint64_t fh, std::shared_ptr<const readpath::ExtentTable> table);
  // Drops the table of `fh`; false when it had none.
  bool Remove(uint64_t fh);
  // The table of `fh`, or null.
  std::shared_ptr<const readpath::ExtentTable> Find(uint64_t fh) const;
  size_t size() const;
  // Drops every handle's table (session reset).
  void DropHandles();

  // Remembers the handler's OPEN answer for `nodeid` (only answers with a table: a handle
  // without one needs the handler for every READ).
  void RememberOpen(uint64_t nodeid, uint32_t open_flags,
                    std::shared_ptr<const readpath::ExtentTable> table);
  // Makes a handle for another OPEN of `nodeid` from its remembered answer, with the table
  // installed. False when the node has no remembered answer.
  bool OpenFromCache(uint64_t nodeid, uint64_t* fh, uint32_t* open_flags);
  // Forgets the remembered answers (session reset).
  void ForgetOpens();

  // Forgets the remembered OPEN answers of nodes in [lo, hi) and drops the table of every handle
  // with an extent on one of `blob_slots` (its READs then go to the handler). Returns how many
  // tables were dropped.
  size_t Invalidate(uint64_t lo, uint64_t hi, std::span<const uint32_t> blob_slots);

 private:
  struct OpenAnswer {
    uint32_t open_flags = 0;
    std::shared_ptr<const readpath::ExtentTable> table;
  };

  mutable std::shared_mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<const readpath::ExtentTable>> tables_;  // mu_
  std::unordered_map<uint64_t, OpenAnswer> opens_;                                     // mu_
  // ORDERING: relaxed; only hands out distinct numbers.
  std::atomic<uint64_t> next_native_{0};
};

}  // namespace nydus::fuse
