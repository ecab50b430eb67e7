#include "passthrough/pt_handles.h"

namespace nydus::passthrough {

uint64_t HandleTable::Insert(std::shared_ptr<OpenFile> file) {
  std::unique_lock lock(mu_);
  uint64_t fh;
  do {
    fh = next_;
    next_ = next_ >= kMaxHandle ? 1 : next_ + 1;
  } while (map_.count(fh) != 0);
  map_.emplace(fh, std::move(file));
  return fh;
}

std::shared_ptr<OpenFile> HandleTable::Get(uint64_t fh) const {
  std::shared_lock lock(mu_);
  auto it = map_.find(fh);
  return it == map_.end() ? nullptr : it->second;
}

std::shared_ptr<OpenFile> HandleTable::Remove(uint64_t fh) {
  std::shared_ptr<OpenFile> out;
  std::unique_lock lock(mu_);
  auto it = map_.find(fh);
  if (it == map_.end()) return nullptr;
  out = std::move(it->second);
  map_.erase(it);
  return out;
}

void HandleTable::Clear() {
  std::unordered_map<uint64_t, std::shared_ptr<OpenFile>> dropped;
  std::unique_lock lock(mu_);
  dropped.swap(map_);
  lock.unlock();
}

size_t HandleTable::size() const {
  std::shared_lock lock(mu_);
  return map_.size();
}

}  // namespace nydus::passthrough
