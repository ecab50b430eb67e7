#include "fuse/native_mounts.h"

#include <mutex>

namespace nydus::fuse {

bool NativeMounts::Attach(Mount m) {
  if (m.fs == nullptr || m.lo >= m.hi) return false;
  std::unique_lock lock(mu_);
  for (const Mount& o : mounts_) {
    if (m.lo < o.hi && o.lo < m.hi) return false;
  }
  mounts_.push_back(std::move(m));
  count_.store(mounts_.size(), std::memory_order_relaxed);
  return true;
}

std::shared_ptr<NativeFs> NativeMounts::Detach(uint64_t lo) {
  std::shared_ptr<NativeFs> out;
  std::unique_lock lock(mu_);
  for (auto it = mounts_.begin(); it != mounts_.end(); ++it) {
    if (it->lo != lo) continue;
    out = std::move(it->fs);
    mounts_.erase(it);
    break;
  }
  count_.store(mounts_.size(), std::memory_order_relaxed);
  return out;
}

std::shared_ptr<NativeFs> NativeMounts::Find(uint64_t nodeid, Mount* m) const {
  if (empty()) return nullptr;
  std::shared_lock lock(mu_);
  for (const Mount& o : mounts_) {
    if (nodeid >= o.lo && nodeid < o.hi) {
      if (m != nullptr) *m = o;
      return o.fs;
    }
  }
  return nullptr;
}

std::shared_ptr<NativeFs> NativeMounts::AtStart(uint64_t lo) const {
  std::shared_lock lock(mu_);
  for (const Mount& o : mounts_) {
    if (o.lo == lo) return o.fs;
  }
  return nullptr;
}

std::vector<NativeMounts::Mount> NativeMounts::All() const {
  std::shared_lock lock(mu_);
  return mounts_;
}

}  // namespace nydus::fuse
