#include "fuse/reply_cache.h"

#include <cstring>
#include <mutex>

namespace nydus::fuse {

size_t ReplyCache::MakeKey(uint64_t parent, const char* name, size_t len, char* buf) {
  std::memcpy(buf, &parent, sizeof(parent));
  std::memcpy(buf + sizeof(parent), name, len);
  return sizeof(parent) + len;
}

bool ReplyCache::GetEntry(uint64_t parent, const char* name, size_t len,
                          fuse_entry_out* out) const {
  if (len > kMaxName) return false;
  char buf[sizeof(uint64_t) + kMaxName];
  const std::string_view key(buf, MakeKey(parent, name, len, buf));
  std::shared_lock lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  *out = it->second;
  return true;
}

void ReplyCache::PutEntry(uint64_t parent, const char* name, size_t len, const fuse_entry_out& e) {
  if (len > kMaxName || max_entries_ == 0) return;
  char buf[sizeof(uint64_t) + kMaxName];
  std::string key(buf, MakeKey(parent, name, len, buf));
  std::unique_lock lock(mu_);
  // A bound, not an LRU: refilling after a rare clear is cheaper than ordering every hit.
  if (entries_.size() >= max_entries_) entries_.clear();
  entries_.insert_or_assign(std::move(key), e);
}

bool ReplyCache::GetAttr(uint64_t nodeid, fuse_attr_out* out) const {
  std::shared_lock lock(mu_);
  auto it = attrs_.find(nodeid);
  if (it == attrs_.end()) return false;
  *out = it->second;
  return true;
}

void ReplyCache::PutAttr(uint64_t nodeid, const fuse_attr_out& a) {
  if (max_entries_ == 0) return;
  std::unique_lock lock(mu_);
  if (attrs_.size() >= max_entries_) attrs_.clear();
  attrs_.insert_or_assign(nodeid, a);
}

void ReplyCache::Clear() {
  std::unique_lock lock(mu_);
  entries_.clear();
  attrs_.clear();
}

size_t ReplyCache::InvalidateNodes(uint64_t lo, uint64_t hi) {
  if (lo >= hi) return 0;
  auto in = [lo, hi](uint64_t n) { return n >= lo && n < hi; };
  size_t dropped = 0;
  std::unique_lock lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    uint64_t parent;
    std::memcpy(&parent, it->first.data(), sizeof(parent));
    if (in(parent) || in(it->second.nodeid)) {
      it = entries_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  dropped += std::erase_if(attrs_, [&](const auto& kv) { return in(kv.first); });
  return dropped;
}

size_t ReplyCache::entries() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

size_t ReplyCache::attrs() const {
  std::shared_lock lock(mu_);
  return attrs_.size();
}

}  // namespace nydus::fuse
