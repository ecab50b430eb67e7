// The upcalls waiting for the handler, and their encoding into the arena it reads (upcall.h).
//
// Three kinds of items: a request or read miss by token (encoded from its pending slot when
// drained, so a request answered or voided meanwhile is simply skipped), FORGET pairs (runs of
// FORGETs coalesce into one item of up to 64k pairs, so a BATCH_FORGET storm costs one record per
// batch), and notifications (INIT, DESTROY, closed) with their numbers.
//
// The listener is told once per stretch of non-empty queue: the first push after a drain that
// emptied the queue wakes it, later pushes find the wake already pending.
//
// Threading: one lock (mu_) over the queue and the wake flag. Push* from any thread; Drain on the
// owner's thread (also safe elsewhere). The listener is called outside the lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "fuse/pending.h"
#include "fuse/upcall.h"

namespace nydus::fuse {

class UpcallQueue {
 public:
  // `pending` holds the slots that token items refer to; both must outlive the queue.
  UpcallQueue(UpcallListener* listener, PendingTable* pending)
      : listener_(listener), pending_(pending) {}
  UpcallQueue(const UpcallQueue&) = delete;
  UpcallQueue& operator=(const UpcallQueue&) = delete;

  // A request (kind = its opcode) or a read miss (kUpcallReadMiss) waiting by token.
  void PushToken(uint32_t kind, uint64_t token);
  // A notification (kUpcallInit, kUpcallDestroy, kUpcallClosed) and its a0..a3.
  void PushNotice(uint32_t kind, double a0, double a1 = 0, double a2 = 0, double a3 = 0);
  // n (nodeid, nlookup) pairs of FORGET / BATCH_FORGET entries.
  void PushForgets(const double* pairs, size_t n);

  // Encodes queued items into `arena`. Returns the number of records written (also in
  // arena->count); 0 when nothing is queued.
  size_t Drain(UpcallArena* arena);

 private:
  struct Item {
    explicit Item(uint32_t k) : kind(k) {}
    uint32_t kind;  // an opcode (request by token), or kUpcall{ReadMiss,Forget,Init,Destroy,Closed}
    uint64_t token = 0;
    double a[4] = {};
    std::vector<double> forgets;  // kUpcallForget: nodeid, nlookup pairs
  };

  // Appends under the lock; wakes the listener (outside it) when no wake is pending.
  template <typename Fn>
  void Push(Fn&& append);

  UpcallListener* const listener_;
  PendingTable* const pending_;
  std::mutex mu_;
  std::deque<Item> items_;     // guarded by mu_
  bool wake_pending_ = false;  // guarded by mu_: the listener was told, not yet drained
};

}  // namespace nydus::fuse
