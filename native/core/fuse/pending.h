// Requests that outlive FuseSession::OnRequest: those waiting for the handler (upcalls) and READs
// parked on missing chunks. Each gets a token (slot index + generation) that the handler answers
// with; the generation makes late or duplicate answers harmless (style: every request is
// answered exactly once).
//
// A slot moves Free -> Live -> Claimed -> Free. Claim() is the only way to answer a request and
// succeeds once per token, so a JS reply racing with Shutdown() or a miss retry completes the
// request exactly once. Slots are allocated in blocks and reused, never freed, so a pointer
// to a claimed slot stays valid until Release().
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "fuse/abi.h"
#include "readpath/extent_table.h"
#include "readpath/reader.h"
#include "transport/request.h"

namespace nydus::fuse {

enum class PendingKind : uint8_t { kUpcall, kParkedRead };

struct Pending {
  transport::FuseRequest* req = nullptr;
  PendingKind kind = PendingKind::kUpcall;
  // Request facts copied at decode time (the readable slices may be gone or rewritten).
  uint32_t opcode = 0;
  uint64_t unique = 0;
  uint64_t nodeid = 0;
  uint32_t uid = 0, gid = 0, pid = 0;
  uint64_t args[4] = {};
  uint32_t name_len = 0;
  char name[kMaxName + 1] = {};
  // Mutating requests of a writable range (session_writable.cc): their decoded arguments, sent
  // to the handler as the upcall's bytes (upcall.h). Empty for every other request.
  std::vector<uint8_t> payload;
  // kParkedRead: what to retry, and which chunks it waits for.
  std::shared_ptr<const readpath::ExtentTable> table;
  std::vector<readpath::ChunkRef> missing;
  // When the request started waiting (steady clock, us), for latency metrics.
  uint64_t start_us = 0;

  // Owned by PendingTable (under its lock).
  uint32_t index = 0;
  uint32_t generation = 1;
  uint8_t state = 0;  // 0 free, 1 live, 2 claimed
};

class PendingTable {
 public:
  explicit PendingTable(size_t max_slots) : max_slots_(max_slots) {}
  PendingTable(const PendingTable&) = delete;
  PendingTable& operator=(const PendingTable&) = delete;

  // A free slot in Claimed state (the caller fills it, then Publish()es it). Null when full.
  Pending* Acquire();
  // Makes an acquired slot live (answerable by token) and returns its token.
  uint64_t Publish(Pending* p);
  // Takes a live slot for answering. Null when the token is stale, unknown or already claimed.
  Pending* Claim(uint64_t token);
  // The slot of a token claimed earlier and not released since (a READ queued for a retry by
  // token); null when the token is not in that state.
  Pending* Claimed(uint64_t token);
  // Puts a claimed slot back to live (a parked READ that must keep waiting).
  void Unclaim(Pending* p);
  // Frees a claimed slot; its token is dead from now on.
  void Release(Pending* p);
  // Claims every live slot (shutdown / session reset).
  void ClaimAll(std::vector<Pending*>* out) {
    ClaimIf([](const Pending&) { return true; }, out);
  }
  // Claims every live slot for which pred(const Pending&) holds (under the table lock).
  template <typename Pred>
  void ClaimIf(Pred&& pred, std::vector<Pending*>* out) {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < used_slots_; ++i) {
      Pending* p = &blocks_[i / kBlock][i % kBlock];
      if (p->state == 1 && pred(static_cast<const Pending&>(*p))) {
        p->state = 2;
        --live_;
        out->push_back(p);
      }
    }
  }
  // Runs fn on a live slot under the table lock, without claiming it (to encode an upcall).
  // Returns false when the token is not live.
  template <typename Fn>
  bool Peek(uint64_t token, Fn&& fn) {
    std::lock_guard lock(mu_);
    Pending* p = Find(token);
    if (p == nullptr || p->state != 1) return false;
    fn(*p);
    return true;
  }
  size_t live() const;

  static uint64_t TokenOf(size_t index, uint32_t generation) {
    return (static_cast<uint64_t>(generation) << kIndexBits) | index;
  }

 private:
  static constexpr int kIndexBits = 24;
  static constexpr uint32_t kGenerationMask = (1u << 29) - 1;  // token < 2^53
  static constexpr size_t kBlock = 64;

  Pending* Find(uint64_t token);

  const size_t max_slots_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Pending[]>> blocks_;  // guarded by mu_
  std::vector<size_t> free_;                        // guarded by mu_
  size_t used_slots_ = 0;                           // guarded by mu_
  size_t live_ = 0;                                 // guarded by mu_
};

}  // namespace nydus::fuse
