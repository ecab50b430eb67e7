// The passthrough filesystem's inodes: one per host inode the guest knows, keyed by
// (st_dev, st_ino, mount id), holding an O_PATH descriptor of that inode and the guest's lookup
// count. Holding the descriptor keeps the host inode alive, so its number cannot be reused by
// another file while the guest still refers to it, and every operation on the node goes through
// the descriptor instead of a path.
//
// Node ids come from the filesystem's slice of the session's id space, [base, base + span):
// the root is `base`, others are handed out by a cursor that wraps (bumping the generation)
// and skips ids in use. A node leaves the table when FORGET brings its lookup count to zero; its
// descriptor closes when the last request holding the node (a shared_ptr) is done with it.
//
// Threading: any thread. `mu_` (a shared_mutex) guards both maps, the cursor and every Inode's
// lookup count; Get() takes it shared, everything else exclusive. An Inode's own fields are
// immutable except the lazily opened data descriptors (Inode::data_mu_) and the lock owners
// (Inode::locks_mu_, used by pt_locks.cc).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "passthrough/pt_host.h"

namespace nydus::passthrough {

struct InodeKey {
  uint64_t dev;
  uint64_t ino;
  uint64_t mnt_id;
  bool operator==(const InodeKey&) const = default;
};

struct InodeKeyHash {
  size_t operator()(const InodeKey& k) const {
    uint64_t h = k.ino * 0x9E3779B97F4A7C15ull;
    h ^= (k.dev + 0x632BE59BD9B4E019ull) + (h << 6) + (h >> 2);
    h ^= (k.mnt_id + 0x94D049BB133111EBull) + (h << 6) + (h >> 2);
    return static_cast<size_t>(h);
  }
};

InodeKey KeyOf(const struct statx& st);

class LockOwners;

class Inode {
 public:
  Inode(uint64_t nodeid, uint64_t generation, InodeKey key, uint32_t type, Fd fd);
  ~Inode();
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  uint64_t nodeid() const { return nodeid_; }
  uint64_t generation() const { return generation_; }
  const InodeKey& key() const { return key_; }
  // S_IFMT bits: an inode never changes type, so checks on it are free of races.
  uint32_t type() const { return type_; }
  bool is_dir() const { return type_ == S_IFDIR; }
  bool is_reg() const { return type_ == S_IFREG; }
  bool is_symlink() const { return type_ == S_IFLNK; }
  // The O_PATH descriptor (valid for the Inode's lifetime).
  int fd() const { return fd_.get(); }

  // A descriptor for I/O without a FUSE file handle (the kernel's zero-message open sends
  // fh 0): opened on first use through /proc/self/fd, read-write when the host allows it, and
  // kept until the node is forgotten. Returns the fd (owned by the Inode) or -errno: for a
  // write when only a read-only descriptor could be opened, why the read-write open failed
  // (EROFS, ETXTBSY, EPERM for an immutable file).
  int DataFd(bool write);

  // POSIX and flock lock owners of this node (pt_locks.h); created on first use.
  LockOwners& locks();
  // The lock owners if any were ever created, else nullptr (FLUSH/RELEASE allocate nothing).
  LockOwners* locks_if_any();

 private:
  const uint64_t nodeid_;
  const uint64_t generation_;
  const InodeKey key_;
  const uint32_t type_;
  const Fd fd_;

  std::mutex data_mu_;
  Fd rw_fd_;          // guarded by data_mu_
  Fd ro_fd_;          // guarded by data_mu_
  int rw_errno_ = 0;  // guarded by data_mu_: why rw_fd_ could not be opened

  std::once_flag locks_once_;
  std::unique_ptr<LockOwners> locks_;  // set once under locks_once_
  // ORDERING: released after locks_ is set inside call_once, acquired by locks_if_any() before
  // it reads locks_.
  std::atomic<bool> has_locks_{false};

  uint64_t nlookup_ = 0;  // guarded by InodeTable::mu_
  friend class InodeTable;
};

class InodeTable {
 public:
  // Ids [base, base + span); span >= 2. `base` is the root's id.
  InodeTable(uint64_t base, uint64_t span);

  uint64_t root_id() const { return base_; }
  bool Owns(uint64_t nodeid) const { return nodeid - base_ < span_; }

  // Installs the root (its lookup count is never decremented to removal).
  void SetRoot(Fd fd, const struct statx& st);
  std::shared_ptr<Inode> root() const;

  // The node with id `nodeid`, or nullptr.
  std::shared_ptr<Inode> Get(uint64_t nodeid) const;

  // Adds one lookup reference to the host inode `fd` (O_PATH) refers to, `st` its statx:
  // the existing node when the host inode is known (fd is then closed), else a new node owning
  // fd. Returns 0 and *out, or -ENFILE when every id of the slice is in use.
  int Intern(Fd fd, const struct statx& st, std::shared_ptr<Inode>* out);
  // Adds `n` lookup references to an existing node (LINK answers with the linked node).
  void Ref(const std::shared_ptr<Inode>& inode, uint64_t n = 1);
  // Adds one lookup reference to the node with `key` if it is known; nullptr otherwise.
  std::shared_ptr<Inode> RefKnown(const InodeKey& key);

  // Drops `n` lookup references; the node leaves the table at zero. Unknown ids and the root
  // are ignored (the kernel may forget the root at unmount; it stays).
  void Forget(uint64_t nodeid, uint64_t n);
  // Forgets every node but the root (session reset / DESTROY).
  void Clear();

  size_t size() const;
  // The lookup count of a node (tests), 0 when unknown.
  uint64_t LookupCount(uint64_t nodeid) const;

 private:
  const uint64_t base_;
  const uint64_t span_;

  mutable std::shared_mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Inode>> by_id_;   // guarded by mu_
  std::unordered_map<InodeKey, uint64_t, InodeKeyHash> by_key_;  // guarded by mu_
  uint64_t cursor_;                                              // guarded by mu_
  uint64_t generation_ = 0;                                      // guarded by mu_
  std::shared_ptr<Inode> root_;                                  // set once by SetRoot
};

}  // namespace nydus::passthrough
