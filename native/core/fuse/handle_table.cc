#include "fuse/handle_table.h"

#include <bitset>
#include <mutex>
#include <vector>

namespace nydus::fuse {

void HandleTable::Set(uint64_t fh, std::shared_ptr<const readpath::ExtentTable> table) {
  std::shared_ptr<const readpath::ExtentTable> old;  // destroyed after the lock is released
  std::unique_lock lock(mu_);
  auto& slot = tables_[fh];
  old.swap(slot);
  slot = std::move(table);
}

bool HandleTable::Remove(uint64_t fh) {
  std::shared_ptr<const readpath::ExtentTable> old;
  std::unique_lock lock(mu_);
  auto it = tables_.find(fh);
  if (it == tables_.end()) return false;
  old.swap(it->second);
  tables_.erase(it);
  return true;
}

std::shared_ptr<const readpath::ExtentTable> HandleTable::Find(uint64_t fh) const {
  std::shared_lock lock(mu_);
  if (tables_.empty()) return nullptr;
  auto it = tables_.find(fh);
  return it == tables_.end() ? nullptr : it->second;
}

size_t HandleTable::size() const {
  std::shared_lock lock(mu_);
  return tables_.size();
}

void HandleTable::DropHandles() {
  std::unordered_map<uint64_t, std::shared_ptr<const readpath::ExtentTable>> old;
  std::unique_lock lock(mu_);
  old.swap(tables_);
}

void HandleTable::RememberOpen(uint64_t nodeid, uint32_t open_flags,
                               std::shared_ptr<const readpath::ExtentTable> table) {
  if (table == nullptr) return;
  std::unordered_map<uint64_t, OpenAnswer> old;
  std::unique_lock lock(mu_);
  // A bound, not an LRU; tables are shared with the open handles, so a clear frees only the
  // ones no handle uses.
  if (opens_.size() >= kMaxCachedOpens) old.swap(opens_);
  opens_.insert_or_assign(nodeid, OpenAnswer{open_flags, std::move(table)});
}

bool HandleTable::OpenFromCache(uint64_t nodeid, uint64_t* fh, uint32_t* open_flags) {
  std::shared_ptr<const readpath::ExtentTable> old;
  std::unique_lock lock(mu_);
  auto it = opens_.find(nodeid);
  if (it == opens_.end()) return false;
  *fh = kNativeFhBase + next_native_.fetch_add(1, std::memory_order_relaxed);
  *open_flags = it->second.open_flags;
  auto& slot = tables_[*fh];
  old.swap(slot);
  slot = it->second.table;
  return true;
}

void HandleTable::ForgetOpens() {
  std::unordered_map<uint64_t, OpenAnswer> old;
  std::unique_lock lock(mu_);
  old.swap(opens_);
}

size_t HandleTable::Invalidate(uint64_t lo, uint64_t hi, std::span<const uint32_t> blob_slots) {
  std::bitset<readpath::kMaxBlobSlots> gone;
  for (uint32_t s : blob_slots) {
    if (s < readpath::kMaxBlobSlots) gone.set(s);
  }
  auto reads_gone_blob = [&gone](const readpath::ExtentTable& t) {
    for (const auto& e : t.extents()) {
      if ((e.flags & readpath::kExtentHole) == 0 && gone.test(e.blob_slot)) return true;
    }
    return false;
  };
  // Destroyed after the lock is released (a READ in progress may still hold one).
  std::vector<std::shared_ptr<const readpath::ExtentTable>> dropped;
  std::unordered_map<uint64_t, OpenAnswer> forgotten;
  std::unique_lock lock(mu_);
  if (lo < hi) {
    for (auto it = opens_.begin(); it != opens_.end();) {
      if (it->first >= lo && it->first < hi) {
        forgotten.insert(opens_.extract(it++));
      } else {
        ++it;
      }
    }
  }
  if (gone.none()) return 0;
  for (auto it = tables_.begin(); it != tables_.end();) {
    if (it->second != nullptr && reads_gone_blob(*it->second)) {
      dropped.push_back(std::move(it->second));
      it = tables_.erase(it);
    } else {
      ++it;
    }
  }
  return dropped.size();
}

}  // namespace nydus::fuse
