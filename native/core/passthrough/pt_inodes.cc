#include "passthrough/pt_inodes.h"

#include <sys/sysmacros.h>

#include <cerrno>
#include <vector>

#include "passthrough/pt_locks.h"

namespace nydus::passthrough {

InodeKey KeyOf(const struct statx& st) {
  return InodeKey{makedev(st.stx_dev_major, st.stx_dev_minor), st.stx_ino, st.stx_mnt_id};
}

Inode::Inode(uint64_t nodeid, uint64_t generation, InodeKey key, uint32_t type, Fd fd)
    : nodeid_(nodeid), generation_(generation), key_(key), type_(type), fd_(std::move(fd)) {}

Inode::~Inode() = default;

int Inode::DataFd(bool write) {
  std::lock_guard lock(data_mu_);
  if (!rw_fd_.valid() && rw_errno_ == 0) {
    int fd = ReopenInode(fd_.get(), O_RDWR);
    if (fd >= 0) {
      rw_fd_ = Fd(fd);
    } else {
      rw_errno_ = -fd;
    }
  }
  if (rw_fd_.valid()) return rw_fd_.get();
  // A read-only mount, an immutable or running file: reads still work through a read-only
  // descriptor; a write gets the reason the read-write open failed.
  if (write) return -rw_errno_;
  if (!ro_fd_.valid()) {
    int fd = ReopenInode(fd_.get(), O_RDONLY);
    if (fd < 0) return fd;
    ro_fd_ = Fd(fd);
  }
  return ro_fd_.get();
}

LockOwners& Inode::locks() {
  std::call_once(locks_once_, [this] {
    locks_ = std::make_unique<LockOwners>();
    has_locks_.store(true, std::memory_order_release);
  });
  return *locks_;
}

LockOwners* Inode::locks_if_any() {
  return has_locks_.load(std::memory_order_acquire) ? locks_.get() : nullptr;
}

InodeTable::InodeTable(uint64_t base, uint64_t span)
    : base_(base), span_(span < 2 ? 2 : span), cursor_(1) {}

void InodeTable::SetRoot(Fd fd, const struct statx& st) {
  root_ = std::make_shared<Inode>(base_, 0, KeyOf(st), st.stx_mode & S_IFMT, std::move(fd));
  std::unique_lock lock(mu_);
  root_->nlookup_ = 1;
  by_id_[base_] = root_;
  by_key_[root_->key()] = base_;
}

std::shared_ptr<Inode> InodeTable::root() const { return root_; }

std::shared_ptr<Inode> InodeTable::Get(uint64_t nodeid) const {
  std::shared_lock lock(mu_);
  auto it = by_id_.find(nodeid);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<Inode> InodeTable::RefKnown(const InodeKey& key) {
  std::unique_lock lock(mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return nullptr;
  auto n = by_id_.find(it->second);
  if (n == by_id_.end()) return nullptr;
  ++n->second->nlookup_;
  return n->second;
}

int InodeTable::Intern(Fd fd, const struct statx& st, std::shared_ptr<Inode>* out) {
  const InodeKey key = KeyOf(st);
  Fd unused;  // closed after the lock is released
  {
    std::unique_lock lock(mu_);
    auto it = by_key_.find(key);
    if (it != by_key_.end()) {
      const auto& node = by_id_.at(it->second);
      ++node->nlookup_;
      *out = node;
      unused = std::move(fd);
      return 0;
    }
    if (by_id_.size() >= span_) return -ENFILE;
    // The cursor walks [1, span); a wrap bumps the generation so a reused id is a new
    // (nodeid, generation) pair for the kernel.
    uint64_t id;
    do {
      if (cursor_ >= span_) {
        cursor_ = 1;
        ++generation_;
      }
      id = base_ + cursor_++;
    } while (by_id_.count(id) != 0);
    auto node = std::make_shared<Inode>(id, generation_, key, st.stx_mode & S_IFMT, std::move(fd));
    node->nlookup_ = 1;
    by_id_.emplace(id, node);
    by_key_.emplace(key, id);
    *out = std::move(node);
  }
  return 0;
}

void InodeTable::Ref(const std::shared_ptr<Inode>& inode, uint64_t n) {
  std::unique_lock lock(mu_);
  inode->nlookup_ += n;
}

void InodeTable::Forget(uint64_t nodeid, uint64_t n) {
  if (nodeid == base_) return;
  std::shared_ptr<Inode> dropped;  // destroyed (fd closed) after the lock is released
  std::unique_lock lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return;
  Inode& node = *it->second;
  node.nlookup_ = n >= node.nlookup_ ? 0 : node.nlookup_ - n;
  if (node.nlookup_ != 0) return;
  auto k = by_key_.find(node.key());
  if (k != by_key_.end() && k->second == nodeid) by_key_.erase(k);
  dropped = std::move(it->second);
  by_id_.erase(it);
  lock.unlock();
}

void InodeTable::Clear() {
  std::vector<std::shared_ptr<Inode>> dropped;
  std::unique_lock lock(mu_);
  dropped.reserve(by_id_.size());
  for (auto& [id, node] : by_id_) {
    if (id != base_) dropped.push_back(std::move(node));
  }
  by_id_.clear();
  by_key_.clear();
  if (root_) {
    by_id_[base_] = root_;
    by_key_[root_->key()] = base_;
  }
  lock.unlock();
}

size_t InodeTable::size() const {
  std::shared_lock lock(mu_);
  return by_id_.size();
}

uint64_t InodeTable::LookupCount(uint64_t nodeid) const {
  std::shared_lock lock(mu_);
  auto it = by_id_.find(nodeid);
  return it == by_id_.end() ? 0 : it->second->nlookup_;
}

}  // namespace nydus::passthrough
