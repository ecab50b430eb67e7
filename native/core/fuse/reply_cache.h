// Native answers to LOOKUP and GETATTR for filesystems whose answers never change (an immutable
// RAFS image): the first answer of the handler is remembered and every later request for the
// same (parent, name) or node is answered on the transport thread, with no upcall to JavaScript.
// (Repeated OPENs are answered the same way from the handle table, handle_table.h.)
// A LOOKUP+GETATTR round trip through the JS thread costs ~20-35 us of CPU and two thread
// wake-ups at queue depth 1; a cache hit costs well under a microsecond.
//
// Correctness rests on the handler's promise (FuseSessionOptions.immutable): a node's attributes
// and a name's entry (including a negative entry, nodeid 0) are the same for every request of
// the session. The cache holds only successful answers; errors always go to the handler. It is
// emptied whenever the session's state is reset (INIT on an initialized session, DESTROY, a
// transport reset), when it reaches its size bound (then it refills from the handler), and for a
// range of node ids when the owner says the answers for those nodes changed (InvalidateNodes:
// a pseudo directory gained or lost a mount, an image was unmounted).
//
// Threading: any thread. Lookups take a shared lock, inserts an exclusive one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fuse/abi.h"

namespace nydus::fuse {

class ReplyCache {
 public:
  // Entries of each kind kept before the cache is emptied and refilled: 32k of each is about
  // 12 MB at most (a 100k-file image opens at ~84 MB RSS and the budget is 100 MB in all).
  static constexpr size_t kDefaultMaxEntries = 32768;

  explicit ReplyCache(size_t max_entries = kDefaultMaxEntries) : max_entries_(max_entries) {}

  bool GetEntry(uint64_t parent, const char* name, size_t len, fuse_entry_out* out) const;
  void PutEntry(uint64_t parent, const char* name, size_t len, const fuse_entry_out& e);
  bool GetAttr(uint64_t nodeid, fuse_attr_out* out) const;
  void PutAttr(uint64_t nodeid, const fuse_attr_out& a);
  void Clear();
  // Forgets every answer that names a node in [lo, hi): entries whose parent or target is in the
  // range, and the attributes of nodes in it. For a handler whose answers for those nodes changed
  // (a filesystem mounted or unmounted there). Returns how many were dropped.
  size_t InvalidateNodes(uint64_t lo, uint64_t hi);
  size_t entries() const;
  size_t attrs() const;

 private:
  // Key of an entry: the parent's id (8 bytes, host order) followed by the name bytes.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view k) const { return std::hash<std::string_view>{}(k); }
  };
  static size_t MakeKey(uint64_t parent, const char* name, size_t len, char* buf);

  const size_t max_entries_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, fuse_entry_out, KeyHash, std::equal_to<>> entries_;  // mu_
  std::unordered_map<uint64_t, fuse_attr_out> attrs_;                                  // mu_
};

}  // namespace nydus::fuse
