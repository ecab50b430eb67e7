// A test-only FUSE responder for nydus_vu_testd: answers the read-only FUSE operations a Linux
// 6.1 virtiofs guest sends (INIT, DESTROY, LOOKUP, FORGET, BATCH_FORGET, GETATTR, READLINK,
// OPEN, READ, RELEASE, OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, STATFS, GETXATTR, LISTXATTR,
// FLUSH, FSYNC) from an in-memory copy of a host directory plus synthetic files, so the vhost
// transport can be tested and measured end to end without the real FUSE session (which lives in
// native/core/fuse and is built by another layer).
//
// Like any FUSE server facing a guest, it copies the request header and arguments out of guest
// memory before looking at them and answers every request exactly once, inline on the queue
// thread. It is deliberately simple: no handles, whole files in memory.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "driver/fuse_wire.h"
#include "transport/request.h"

namespace nydus::driver {

class TestResponder : public transport::FuseRequestSink {
 public:
  TestResponder();
  // Loads `dir` recursively (regular files with their contents, directories, symlinks, other
  // types as attributes only) as the root. Returns 0 or -errno with *error set.
  int LoadDir(const std::string& dir, std::string* error);
  // Adds a regular file with deterministic pseudo-random contents under the root.
  void AddSynthetic(const std::string& name, uint64_t size);
  // Ends loading: allocates the lookup counters. Call before serving.
  void Seal();
  size_t num_nodes() const { return nodes_.size(); }

  void OnRequest(transport::FuseRequest* request) override;
  void OnSessionReset() override;

  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  uint64_t inits() const { return inits_.load(std::memory_order_relaxed); }

 private:
  struct Node {
    std::string name;
    uint64_t parent = 0;
    struct stat st = {};
    std::string data;    // regular files
    std::string target;  // symlinks
    std::vector<std::pair<std::string, std::string>> xattrs;
    std::vector<std::pair<std::string, uint64_t>> children;  // sorted by name
  };
  class Reply;

  uint64_t AddNode(uint64_t parent, const std::string& name, const struct stat& st);
  int LoadInto(uint64_t node, const std::string& path, std::string* error);
  const Node* Get(uint64_t nodeid) const;
  void FillAttr(uint64_t nodeid, fuse_attr* a) const;
  void FillEntry(uint64_t nodeid, fuse_entry_out* e);

  void Dispatch(const fuse_in_header& h, const uint8_t* args, size_t args_len, Reply& r);
  void DoInit(const uint8_t* args, size_t len, Reply& r);
  void DoLookup(const fuse_in_header& h, const uint8_t* args, size_t len, Reply& r);
  void DoForget(uint64_t nodeid, uint64_t n);
  void DoRead(const fuse_in_header& h, const uint8_t* args, size_t len, Reply& r);
  void DoReaddir(const fuse_in_header& h, const uint8_t* args, size_t len, bool plus, Reply& r);
  void DoXattr(const fuse_in_header& h, const uint8_t* args, size_t len, bool list, Reply& r);

  std::vector<std::unique_ptr<Node>> nodes_;         // nodeid - 1; immutable after loading
  std::unique_ptr<std::atomic<int64_t>[]> nlookup_;  // per node, guest references
  size_t nlookup_size_ = 0;
  std::atomic<bool> initialized_{false};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> inits_{0};
};

}  // namespace nydus::driver
