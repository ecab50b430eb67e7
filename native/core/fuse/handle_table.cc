#include "fuse/handle_table.h"

#include <mutex>

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

}  // namespace nydus::fuse
