// One virtqueue of the vhost-user-fs device at run time: its configuration from the frontend,
// the worker thread that drains it, the preallocated FuseRequest pool, and completion.
//
// Threads and ownership (style rule 7):
// - Control thread (vhost-user messages): configuration, Start/Stop, kick fd. Configuration is
//   only changed while the worker is stopped (the device stops a running ring first).
// - Worker thread (one per started ring): waits on the kick eventfd, pops chains, walks them,
//   hands FuseRequests to the sink inline.
// - Any thread: Complete(). Writes to the used ring, its publication, the call fd and the pool
//   free list are guarded by mu_ (the per-queue lock; reference §6.5 item 5: the only lock on the
//   request path). Completions made by the worker during its drain are published once at the end
//   of the drain; others publish and notify immediately.
// - Lifetime: the device holds the Vring by shared_ptr and every in-flight request holds another
//   reference, so a request completed after a disconnect or after the backend is destroyed still
//   finds its Vring (and drops the completion: its generation is stale).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "transport/request.h"
#include "vhost/desc_chain.h"
#include "vhost/guest_memory.h"
#include "vhost/split_ring.h"
#include "vhost/stats.h"

namespace nydus::vhost {

class Vring;

class VirtioFuseRequest final : public transport::FuseRequest {
 public:
  explicit VirtioFuseRequest(Vring* owner);
  void Complete(uint32_t written) override;
  uint16_t head() const { return head_; }

 private:
  friend class Vring;
  void Fill(const ChainScratch& s);

  Vring* const owner_;
  // Set while in flight (worker at pop, cleared in Complete under the owner's lock).
  std::shared_ptr<Vring> keepalive_;
  std::shared_ptr<const GuestMemory> memory_;  // keeps the slices' mappings alive
  std::vector<transport::IoSlice> in_store_;
  std::vector<transport::IoSlice> out_store_;
  uint64_t generation_ = 0;
  uint16_t head_ = 0;
};

struct VringOptions {
  uint16_t index = 0;
  uint32_t max_queue_size = 1024;
  transport::FuseRequestSink* sink = nullptr;
  const MemoryTable* memory = nullptr;
  std::shared_ptr<BackendCounters> counters;
  bool spawn_worker = true;  // false: Start() does not create a thread (fuzzing)
  // Rounds of pop-publish-recheck per drain before the worker yields to its poll loop (and
  // wakes itself to continue): a guest that keeps the ring full, or lays the rings over each
  // other so our used-ring writes move its avail index, cannot pin the worker in one drain.
  uint32_t max_rounds_per_drain = 64;
  // Chains handled per round before the used index is published (and the driver notified if
  // it asked). Publishing only after every pending chain made the driver and the queue take
  // turns: at queue depth 16 the driver waited for all 16 replies before refilling the ring,
  // and 4 KiB READs ran at half of virtiofsd's rate, which publishes per request. Publishing
  // every few chains lets the driver refill while the rest are served. Measured with the
  // frontend driver at depth 16 (ours / virtiofsd; chains per round 1, 2, 4, 8, all):
  // random 4 KiB READs 1.01, 0.97, 0.97, 0.70, 0.46; LOOKUP+GETATTR 1.06/0.97, 0.94/0.97,
  // 0.89/0.87, 0.87, 0.89; 1 MiB READs 1.03, 1.11, 1.20. 2 is the compromise: metadata gains
  // more from early replies than large READs lose. EVENT_IDX still suppresses notifications
  // the driver did not ask for.
  uint32_t max_chains_per_round = 2;
  // After a drain that handled at least busy_poll_min_chains chains, watch the available ring
  // for up to busy_poll_us (from the last chain found) before sleeping in poll(). A driver
  // keeping many requests in flight refills the ring within microseconds of a reply, while a
  // sleep and a kick cost 10-20 us each way on these machines; at queue depth 1 (drains of one
  // chain) nothing changes. Measured at depth 16 (ours / virtiofsd, no spin -> 20 us):
  // random 4 KiB READs 0.87 -> 1.29 with CPU per request 1.66 -> 1.47 us; LOOKUP+GETATTR
  // 0.90 -> 6.2; small-file cycle 1.11 -> 3.04; 128 KiB READs unchanged (0.94-0.96).
  uint32_t busy_poll_us = 20;
  uint32_t busy_poll_min_chains = 4;
};

class Vring : public std::enable_shared_from_this<Vring> {
 public:
  // Frontend configuration of the ring (control thread only).
  struct Config {
    uint32_t num = 0;
    bool addr_set = false;
    uint64_t desc_uva = 0;
    uint64_t avail_uva = 0;
    uint64_t used_uva = 0;
    uint16_t base = 0;
  };

  explicit Vring(VringOptions options);
  ~Vring();
  Vring(const Vring&) = delete;
  Vring& operator=(const Vring&) = delete;

  uint16_t index() const { return options_.index; }
  Config& config() { return config_; }
  bool running() const { return running_; }
  bool broken() const { return broken_.load(std::memory_order_relaxed); }

  void SetKickFd(UniqueFd fd) { kick_fd_ = std::move(fd); }
  bool has_kick() const { return kick_fd_.valid(); }
  // Safe while the worker runs (SET_VRING_CALL arrives at every start and stop; reference §1.2).
  void SetCallFd(UniqueFd fd);
  void SetErrFd(UniqueFd fd);
  void SetEnabled(bool enabled);
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

  // Translates the ring addresses in `memory`, checks their size and alignment, and starts the
  // worker. Returns 0 or -errno with *error set.
  int Start(std::shared_ptr<const GuestMemory> memory, bool event_idx, std::string* error);
  // Stops popping, joins the worker, waits up to `drain` for in-flight requests to complete
  // (GET_VRING_BASE semantics, reference §2.6), then forgets the rings: later completions are
  // dropped. Returns the next avail index to use (the value GET_VRING_BASE replies).
  uint16_t Stop(std::chrono::milliseconds drain);
  // Stop (no waiting) and forget configuration and fds (disconnect, RESET_OWNER).
  void Reset();

  // Runs one drain on the calling thread (tests and fuzzing without a worker).
  void DrainForTest() { Drain(); }
  size_t in_flight() const;

 private:
  friend class VirtioFuseRequest;

  void WorkerMain();
  void Wake();
  void Drain();
  // The busy poll after a busy drain (VringOptions::busy_poll_us).
  void SpinForMore();
  // Pops up to max_chains_per_round of what is pending (*left: more were pending); returns
  // false when the drain must end (broken, disabled, stopping, or the pool is empty).
  bool PopAvailable(const std::shared_ptr<const GuestMemory>& memory, bool* left);
  VirtioFuseRequest* BeginRequest(uint16_t head, bool* duplicate);
  void FailChain(VirtioFuseRequest* request, ChainError error);
  void MarkBroken(const char* reason);
  void Complete(VirtioFuseRequest* request, uint32_t written);
  void SignalCallLocked();

  const VringOptions options_;
  Config config_;         // control thread
  UniqueFd kick_fd_;      // control thread; read by the worker while running
  UniqueFd wake_fd_;      // eventfd: stop/enable/pool-refill wakeups
  std::thread worker_;    // control thread
  bool running_ = false;  // control thread (also read under mu_)
  // ORDERING: the three flags are plain seq_cst signals; they publish no other data (the ring
  // configuration is handed over by thread start/join, everything else is under mu_).
  std::atomic<bool> stop_{false};     // control -> worker
  std::atomic<bool> enabled_{false};  // control -> worker
  std::atomic<bool> broken_{false};   // worker (reset by Start)
  // ORDERING: relaxed; only throttles log lines.
  std::atomic<int64_t> last_bad_chain_log_s_{0};    // any thread: second of the last warning
  std::shared_ptr<const GuestMemory> ring_memory_;  // mapping that holds the three rings
  ChainScratch scratch_;                            // worker thread
  uint32_t last_drain_chains_ = 0;                  // worker thread

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;      // signalled when in_flight_ drops to 0
  SplitRing ring_;                       // used side under mu_; avail side worker-only
  UniqueFd call_fd_;                     // mu_
  UniqueFd err_fd_;                      // mu_
  uint64_t generation_ = 1;              // mu_: bumped at every Start and Stop
  size_t in_flight_ = 0;                 // mu_
  bool starved_ = false;                 // mu_: the worker stopped for want of a free slot
  std::vector<uint8_t> head_in_flight_;  // mu_: per head of the current generation
  std::vector<std::unique_ptr<VirtioFuseRequest>> slots_;  // fixed after construction
  std::vector<VirtioFuseRequest*> free_;                   // mu_
};

}  // namespace nydus::vhost
