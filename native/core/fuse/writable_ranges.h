// Node-id ranges [lo, hi) whose filesystem is writable and served by the handler (a writable
// overlay): the session decodes their mutating requests and sends them up instead of answering
// EROFS, and never answers their LOOKUP/GETATTR/OPEN from remembered replies (their answers
// change with every write).
//
// Threading: Contains() from any number of transport threads; Set() from the owner's thread.
// count_ lets a session with no writable range skip the lock (one relaxed load per request).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

namespace nydus::fuse {

class WritableRanges {
 public:
  // Adds (on) or removes (!on) the range [lo, hi). Adding an empty range or one already there
  // changes nothing; removing one that is not there changes nothing.
  void Set(uint64_t lo, uint64_t hi, bool on) {
    std::unique_lock lock(mu_);
    auto it = ranges_.begin();
    for (; it != ranges_.end(); ++it) {
      if (it->first == lo && it->second == hi) break;
    }
    if (on && it == ranges_.end() && lo < hi) ranges_.emplace_back(lo, hi);
    if (!on && it != ranges_.end()) ranges_.erase(it);
    count_.store(ranges_.size(), std::memory_order_relaxed);
  }

  bool Contains(uint64_t nodeid) const {
    // ORDERING: relaxed. A request racing Set() may see the old table; the handler makes a
    // writable mount visible only after Set() returns.
    if (count_.load(std::memory_order_relaxed) == 0) return false;
    std::shared_lock lock(mu_);
    for (const auto& [lo, hi] : ranges_) {
      if (nodeid >= lo && nodeid < hi) return true;
    }
    return false;
  }

 private:
  mutable std::shared_mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // guarded by mu_
  std::atomic<size_t> count_{0};
};

}  // namespace nydus::fuse
