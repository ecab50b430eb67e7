// FUSE file handles of the passthrough filesystem: what OPEN, CREATE, TMPFILE and OPENDIR hand
// to the kernel and RELEASE / RELEASEDIR give back. Each holds its own host descriptor (its own
// open file description, so flock and file-position semantics are per open, as on the host)
// and the node it was opened on.
//
// Handle values count up from 1 (0 is the kernel's "no handle" under zero-message opens) and stay
// below 2^53 so they survive a trip through JavaScript numbers.
//
// Threading: any thread. `mu_` guards the map; an OpenFile's fields are immutable except the
// directory stream state, guarded by OpenFile::dir_mu (READDIR on one handle may arrive on two
// queues at once).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "passthrough/pt_host.h"
#include "passthrough/pt_inodes.h"

namespace nydus::passthrough {

class OpenFile {
 public:
  OpenFile(std::shared_ptr<Inode> inode, Fd fd, int flags)
      : inode_(std::move(inode)), fd_(std::move(fd)), flags_(flags) {}

  const std::shared_ptr<Inode>& inode() const { return inode_; }
  int fd() const { return fd_.get(); }
  int flags() const { return flags_; }

  // Directory streams (OPENDIR handles). `dirents` holds the last getdents64 batch, of which
  // [dirents_pos, dirents_len) is not yet sent; `dir_pos` is the directory offset (cookie) of
  // the next unsent entry. READDIR continues from the batch when the kernel's offset equals
  // dir_pos, and seeks the host descriptor (dropping the batch) otherwise.
  std::mutex dir_mu;
  uint64_t dir_pos = 0;          // guarded by dir_mu
  std::vector<uint8_t> dirents;  // guarded by dir_mu
  size_t dirents_pos = 0;        // guarded by dir_mu
  size_t dirents_len = 0;        // guarded by dir_mu

 private:
  const std::shared_ptr<Inode> inode_;
  const Fd fd_;
  const int flags_;
};

class HandleTable {
 public:
  uint64_t Insert(std::shared_ptr<OpenFile> file);
  // The handle, or nullptr when unknown.
  std::shared_ptr<OpenFile> Get(uint64_t fh) const;
  // Removes and returns the handle (nullptr when unknown). Its descriptor closes when the last
  // request using it is done.
  std::shared_ptr<OpenFile> Remove(uint64_t fh);
  void Clear();
  size_t size() const;

 private:
  static constexpr uint64_t kMaxHandle = (1ull << 53) - 1;

  mutable std::shared_mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<OpenFile>> map_;  // guarded by mu_
  uint64_t next_ = 1;                                            // guarded by mu_
};

}  // namespace nydus::passthrough
