// The guest's FUSE layer for the frontend driver: puts FUSE requests on the virtqueues the way
// Linux 6.1's virtio_fs does (reference §2.5: [in header 40 R][in args R][out header 16 W]
// [out args W][pages W...], every multi-buffer request in an indirect table, FORGET as one direct
// 48-byte buffer on hiprio), waits for them, and checks every reply: used id known, out header
// `unique` echoed, `error` 0 or -errno with no payload, `len` within what was offered and equal
// to the used length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "driver/frontend/fs_session.h"
#include "driver/fuse_wire.h"

namespace nydus::driver {

struct RequestSpec {
  uint32_t opcode = 0;
  uint64_t nodeid = 0;
  uint32_t queue = 1;
  const void* args = nullptr;  // fixed in-args (and names), one readable buffer like Linux's argbuf
  uint32_t args_len = 0;
  const void* args2 = nullptr;  // appended to args (a name after a fixed struct)
  uint32_t args2_len = 0;
  uint32_t out_args_len = 0;     // one writable buffer for fixed out-args (or READLINK's 4095)
  uint32_t out_pages = 0;        // bytes of page-sized writable buffers (READ, READDIR[PLUS])
  bool forget_style = false;     // header + args in one direct readable buffer, no reply
  bool direct = false;           // direct descriptors instead of an indirect table
  uint64_t unique = 0;           // 0: next sequence number
  uint32_t in_len_override = 0;  // fault injection: a lying fuse_in_header.len
};

struct Completion {
  int slot = -1;
  uint32_t opcode = 0;
  uint32_t used_len = 0;
  fuse_out_header out{};
  bool has_header = false;
  uint64_t latency_ns = 0;
  std::vector<uint8_t> payload;  // reply bytes after the out header (copied on request)
};

class FuseClient {
 public:
  // `slots` requests can be in flight at once; each can receive `data_cap` bytes of pages.
  FuseClient(driver::frontend::FsFrontendSession* session, uint32_t slots, uint32_t data_cap);
  int Init(std::string* error);

  // Queues a request (and kicks unless told not to). Returns the slot or -EBUSY/-ENOSPC.
  int Submit(const RequestSpec& spec, bool kick = true);
  void Kick(uint32_t queue) { session_->Kick(queue); }
  // Waits for completions on `queue`; checks them; copies payloads when copy_payload.
  int Poll(uint32_t queue, std::vector<Completion>* out, int timeout_ms, bool copy_payload);
  // Submit + wait for that request.
  int Call(const RequestSpec& spec, Completion* c, int timeout_ms = -1);

  // Typed operations. Each returns 0, the FUSE -errno, or a transport error (-ETIMEDOUT...).
  int InitFuse(fuse_init_out* out);
  int Lookup(uint64_t parent, const std::string& name, fuse_entry_out* out);
  int Getattr(uint64_t node, fuse_attr_out* out);
  int Open(uint64_t node, bool dir, fuse_open_out* out);
  int Release(uint64_t node, uint64_t fh, bool dir);
  int Read(uint64_t node, uint64_t fh, uint64_t off, uint32_t size, std::vector<uint8_t>* data);
  int ReadDirPlus(uint64_t node, uint64_t fh, uint64_t off, std::vector<uint8_t>* data);
  int Readlink(uint64_t node, std::string* target);
  int Statfs(uint64_t node, fuse_statfs_out* out);
  int Getxattr(uint64_t node, const std::string& name, uint32_t size, std::vector<uint8_t>* v);
  int Forget(uint64_t node, uint64_t nlookup);
  int Destroy();

  uint32_t data_cap() const { return data_cap_; }
  uint32_t slots() const { return static_cast<uint32_t>(slots_.size()); }
  uint32_t in_flight() const { return in_flight_; }
  int timeout_ms() const { return timeout_ms_; }
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }
  // Protocol findings about the server's replies (empty when it behaved).
  const std::vector<std::string>& violations() const { return violations_; }
  uint64_t used_len_mismatches() const { return used_len_mismatches_; }
  driver::frontend::FsFrontendSession& session() { return *session_; }
  // The host copy of a slot's reply pages (valid until the slot is reused).
  const uint8_t* SlotData(int slot) const;
  int head_of(int slot) const { return slots_[slot].head; }
  uint64_t unique_of(int slot) const { return slots_[slot].unique; }

 private:
  struct Slot {
    uint64_t in_gpa = 0;
    uint64_t out_gpa = 0;
    uint64_t data_gpa = 0;
    bool busy = false;
    uint32_t queue = 0;
    uint32_t opcode = 0;
    uint64_t unique = 0;
    uint32_t out_cap = 0;  // out header + args + pages offered
    uint32_t out_args_len = 0;
    uint32_t out_pages = 0;
    bool expects_reply = true;
    int head = -1;
    uint64_t start_ns = 0;
  };
  void Violation(const std::string& what);
  void CopyPayload(const Slot& s, uint32_t len, std::vector<uint8_t>* dst) const;
  int CheckFixed(const Completion& c, size_t size, const char* op);

  driver::frontend::FsFrontendSession* session_;
  std::vector<Slot> slots_;
  std::vector<std::vector<int>> head_to_slot_;  // [queue][head] -> slot
  uint32_t data_cap_;
  uint32_t in_flight_ = 0;
  uint64_t next_unique_ = 2;
  int timeout_ms_ = 10000;
  std::vector<std::string> violations_;
  uint64_t used_len_mismatches_ = 0;
};

uint64_t MonoNs();

}  // namespace nydus::driver
