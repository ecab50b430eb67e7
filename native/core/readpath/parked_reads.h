// READs parked on chunks missing from the cache: which READ waits for which chunk, so a fill
// wakes exactly its waiters, and the retry thread that re-runs woken READs off the owner's (JS)
// thread.
//
// A parked READ is known here only by its token (the session's pending-request token); what a
// retry does (serve the READ again and complete it) belongs to the owner, through RetryHandler.
// The thread starts with the first retry and stops in Stop(), which returns the retries it did
// not run so the owner can fail them.
//
// Threading: one lock (mu_) over the waiter map, the retry queue, the retry running now and the
// thread's start and stop. Every method may be called from any thread; RunRetry runs on the retry
// thread, outside the lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "readpath/reader.h"

namespace nydus::readpath {

struct Retry {
  uint64_t token;
  // The handler said the chunks are there: a chunk still missing is an error, not a new wait.
  bool final;
};

class RetryHandler {
 public:
  virtual void RunRetry(const Retry& retry) = 0;

 protected:
  ~RetryHandler() = default;
};

class ParkedReads {
 public:
  explicit ParkedReads(RetryHandler* handler) : handler_(handler) {}
  ~ParkedReads();  // Stop(); what was left is dropped
  ParkedReads(const ParkedReads&) = delete;
  ParkedReads& operator=(const ParkedReads&) = delete;

  // `token` waits for each chunk of `missing` / no longer does.
  void AddWaiters(uint64_t token, std::span<const ChunkRef> missing);
  void RemoveWaiters(uint64_t token, std::span<const ChunkRef> missing);
  // Removes and returns the tokens waiting for any of `indices` of blob `slot` (a token waiting
  // for several of them appears once per chunk).
  std::vector<uint64_t> TakeWaiters(uint32_t slot, std::span<const uint32_t> indices);
  // The tokens waiting for any of `indices` of blob `slot`, each once, left waiting.
  std::vector<uint64_t> Waiters(uint32_t slot, std::span<const uint32_t> indices);
  // Forgets every waiter (session reset: the parked READs are failed by the owner).
  void ClearWaiters();

  // Queues a retry for the retry thread, starting it on first use. False after Stop(): the
  // owner then completes the READ itself.
  bool Schedule(Retry retry);
  // Stops and joins the retry thread and returns the retries it did not run; later Schedule()
  // calls fail. Idempotent.
  std::deque<Retry> Stop();

  // Takes the queued retries whose token `match` accepts off the queue and returns them, after
  // waiting until the retry thread is not running one it accepts (that one completes, or parks
  // again, with the blobs it has). For an owner failing the READs of a filesystem going away.
  // `match(token)` runs under the lock: it must not call back into this object.
  template <typename Match>
  std::vector<Retry> TakeRetriesIf(Match&& match) {
    std::vector<Retry> out;
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return !running_ || !match(current_); });
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (match(it->token)) {
        out.push_back(*it);
        it = retries_.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

 private:
  static uint64_t KeyOf(uint32_t slot, uint32_t index) {
    return (static_cast<uint64_t>(slot) << 32) | index;
  }
  void Loop();
  // TakeWaiters (take: removed, a token once per chunk) and Waiters (left, each token once).
  std::vector<uint64_t> Collect(uint32_t slot, std::span<const uint32_t> indices, bool take);

  RetryHandler* const handler_;
  std::mutex mu_;
  // (slot << 32 | chunk index) -> tokens of parked READs waiting for that chunk.
  std::unordered_map<uint64_t, std::vector<uint64_t>> waiters_;  // guarded by mu_
  std::deque<Retry> retries_;                                    // guarded by mu_
  std::condition_variable cv_;
  std::condition_variable idle_cv_;  // notified when a retry finished running
  bool running_ = false;             // guarded by mu_: the thread is running `current_`
  uint64_t current_ = 0;             // guarded by mu_
  bool stopped_ = false;             // guarded by mu_
  std::thread thread_;               // started under mu_, joined by Stop()
};

}  // namespace nydus::readpath
