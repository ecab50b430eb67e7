// The classes FuseSession is made of, each on its own: the upcall queue (coalescing, encoding,
// wake-ups), the handle table (extent tables, session-made handles, cached OPENs) and the parked
// READs (waiters by chunk, the retry thread and its stop).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "fuse/handle_table.h"
#include "fuse/pending.h"
#include "fuse/upcall_queue.h"
#include "fuse_testing.h"
#include "readpath/parked_reads.h"
#include "testing.h"
#include "vhost_harness.h"

namespace nydus::testing {
namespace {

using fuse::HandleTable;
using fuse::PendingTable;
using fuse::UpcallQueue;
using readpath::ChunkRef;
using readpath::ParkedReads;
using readpath::Retry;
using vhost::testing::WaitFor;

// An arena over private arrays.
struct Arena {
  explicit Arena(size_t records, size_t bytes) : recs(records * UpcallSlot::kStride), buf(bytes) {
    a.records = recs.data();
    a.max_records = records;
    a.bytes = buf.data();
    a.bytes_cap = buf.size();
  }
  const double* rec(size_t i) const { return recs.data() + i * UpcallSlot::kStride; }
  std::vector<double> recs;
  std::vector<uint8_t> buf;
  fuse::UpcallArena a;
};

NTEST(UpcallQueue, ForgetsCoalesceAndNoticesCarryTheirNumbers) {
  CountingListener l;
  PendingTable pending(16);
  UpcallQueue q(&l, &pending);
  const double p1[4] = {5, 1, 6, 2};
  const double p2[2] = {7, 3};
  q.PushForgets(p1, 2);
  q.PushForgets(p2, 1);  // joins the forget item before it
  q.PushNotice(fuse::kUpcallInit, 38, 37, 1, abi::kTransportFuseDev);
  q.PushForgets(p2, 1);           // after a notice: a new item
  NEXPECT_EQ(l.wakes.load(), 1);  // one wake per stretch of non-empty queue
  Arena ar(8, 4096);
  NASSERT_EQ(q.Drain(&ar.a), 3u);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kOpcode], fuse::kUpcallForget);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kA0], 3);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kByteLength], 48);
  const double* pairs = reinterpret_cast<const double*>(
      ar.buf.data() + static_cast<size_t>(ar.rec(0)[UpcallSlot::kByteOffset]));
  NEXPECT_EQ(pairs[4], 7);
  NEXPECT_EQ(pairs[5], 3);
  NEXPECT_EQ(ar.rec(1)[UpcallSlot::kOpcode], fuse::kUpcallInit);
  NEXPECT_EQ(ar.rec(1)[UpcallSlot::kToken], 0);
  NEXPECT_EQ(ar.rec(1)[UpcallSlot::kA0], 38);
  NEXPECT_EQ(ar.rec(1)[UpcallSlot::kA3], abi::kTransportFuseDev);
  NEXPECT_EQ(ar.rec(2)[UpcallSlot::kA0], 1);
  NEXPECT_EQ(q.Drain(&ar.a), 0u);
  q.PushNotice(fuse::kUpcallClosed, 19);
  NEXPECT_EQ(l.wakes.load(), 2);  // drained empty: the next push wakes again
}

NTEST(UpcallQueue, ForgetPairsSplitAcrossFullArenas) {
  CountingListener l;
  PendingTable pending(16);
  UpcallQueue q(&l, &pending);
  std::vector<double> pairs;
  for (int i = 0; i < 100; ++i) pairs.insert(pairs.end(), {double(i + 2), 1});
  q.PushForgets(pairs.data(), 100);
  Arena ar(4, 16 * 60);  // room for 60 pairs per drain
  NASSERT_EQ(q.Drain(&ar.a), 1u);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kA0], 60);
  NASSERT_EQ(q.Drain(&ar.a), 1u);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kA0], 40);
  const double* rest = reinterpret_cast<const double*>(ar.buf.data());
  NEXPECT_EQ(rest[0], 62);  // continues where the first batch stopped
}

NTEST(UpcallQueue, RequestsAreEncodedFromLiveSlotsOnly) {
  CountingListener l;
  PendingTable pending(16);
  UpcallQueue q(&l, &pending);
  auto publish = [&](uint32_t op, const char* name) {
    fuse::Pending* p = pending.Acquire();
    p->kind = fuse::PendingKind::kUpcall;
    p->opcode = op;
    p->nodeid = 1ull << 60;  // beyond 2^53: clamped
    p->uid = 1000;
    p->name_len = static_cast<uint32_t>(std::strlen(name));
    std::memcpy(p->name, name, p->name_len);
    p->args[0] = op == FUSE_GETATTR ? UINT64_MAX : 4;
    const uint64_t token = pending.Publish(p);
    q.PushToken(op, token);
    return token;
  };
  const uint64_t a = publish(FUSE_LOOKUP, "file");
  const uint64_t b = publish(FUSE_GETATTR, "");
  const uint64_t c = publish(FUSE_LOOKUP, "gone");
  fuse::Pending* answered = pending.Claim(c);  // answered before the drain: skipped
  pending.Release(answered);
  Arena ar(8, 4096);
  NASSERT_EQ(q.Drain(&ar.a), 2u);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kToken], static_cast<double>(a));
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kNodeid], 9007199254740992.0);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kUid], 1000);
  NEXPECT_EQ(ar.rec(0)[UpcallSlot::kByteLength], 4);
  NEXPECT_EQ(std::string(reinterpret_cast<const char*>(ar.buf.data()) +
                             static_cast<size_t>(ar.rec(0)[UpcallSlot::kByteOffset]),
                         4),
             std::string("file"));
  NEXPECT_EQ(ar.rec(1)[UpcallSlot::kToken], static_cast<double>(b));
  NEXPECT_EQ(ar.rec(1)[UpcallSlot::kA0], abi::kNoFh);
}

NTEST(HandleTable, TablesPerHandleAndSessionMadeHandles) {
  HandleTable h;
  std::string err;
  auto t = readpath::ExtentTable::FromExtents(4096, {{0, 0, 4096, 4096, 0, 0, 0}}, &err);
  NASSERT_TRUE(t != nullptr);
  NEXPECT_TRUE(h.Find(7) == nullptr);
  h.Set(7, t);
  NEXPECT_TRUE(h.Find(7) == t);
  NEXPECT_EQ(h.size(), 1u);
  uint64_t fh = 0;
  uint32_t flags = 0;
  NEXPECT_FALSE(h.OpenFromCache(3, &fh, &flags));  // nothing remembered for node 3
  h.RememberOpen(3, 2, nullptr);                   // no table: not worth remembering
  NEXPECT_FALSE(h.OpenFromCache(3, &fh, &flags));
  h.RememberOpen(3, 2, t);
  NASSERT_TRUE(h.OpenFromCache(3, &fh, &flags));
  NEXPECT_TRUE(HandleTable::IsNative(fh));
  NEXPECT_FALSE(HandleTable::IsNative(7));
  NEXPECT_EQ(flags, 2u);
  NEXPECT_TRUE(h.Find(fh) == t);  // installed with the reply
  uint64_t fh2 = 0;
  NASSERT_TRUE(h.OpenFromCache(3, &fh2, &flags));
  NEXPECT_NE(fh, fh2);
  NEXPECT_TRUE(h.Remove(fh));
  NEXPECT_FALSE(h.Remove(fh));
  h.DropHandles();
  NEXPECT_EQ(h.size(), 0u);
  NEXPECT_TRUE(h.OpenFromCache(3, &fh, &flags));  // remembered answers survive a handle drop
  h.ForgetOpens();
  NEXPECT_FALSE(h.OpenFromCache(3, &fh, &flags));
}

class RecordingHandler final : public readpath::RetryHandler {
 public:
  void RunRetry(const Retry& r) override {
    std::lock_guard lock(mu);
    ran.push_back(r);
  }
  std::vector<Retry> Ran() {
    std::lock_guard lock(mu);
    return ran;
  }
  std::mutex mu;
  std::vector<Retry> ran;
};

NTEST(ParkedReads, WaitersAreWokenByTheirChunksOnly) {
  RecordingHandler h;
  ParkedReads p(&h);
  const std::vector<ChunkRef> a = {{0, 1}, {0, 2}};
  const std::vector<ChunkRef> b = {{0, 2}, {1, 2}};
  p.AddWaiters(100, a);
  p.AddWaiters(200, b);
  const uint32_t two[] = {2};
  auto woken = p.TakeWaiters(0, two);
  std::sort(woken.begin(), woken.end());
  NEXPECT_TRUE(woken == (std::vector<uint64_t>{100, 200}));
  NEXPECT_TRUE(p.TakeWaiters(0, two).empty());  // taken once
  p.RemoveWaiters(200, b);
  const uint32_t idx2[] = {2};
  NEXPECT_TRUE(p.TakeWaiters(1, idx2).empty());  // 200 left the other chunk too
  const uint32_t one[] = {1};
  NEXPECT_TRUE(p.TakeWaiters(0, one) == (std::vector<uint64_t>{100}));
  p.AddWaiters(300, a);
  p.ClearWaiters();
  NEXPECT_TRUE(p.TakeWaiters(0, one).empty());
}

NTEST(ParkedReads, RetriesRunOnTheThreadUntilStop) {
  RecordingHandler h;
  ParkedReads p(&h);
  NEXPECT_TRUE(p.Schedule({1, false}));
  NEXPECT_TRUE(p.Schedule({2, true}));
  NEXPECT_TRUE(WaitFor([&] { return h.Ran().size() == 2; }));
  auto ran = h.Ran();
  NEXPECT_EQ(ran[0].token, 1u);
  NEXPECT_FALSE(ran[0].final);
  NEXPECT_TRUE(ran[1].final);
  NEXPECT_TRUE(p.Stop().empty());
  NEXPECT_FALSE(p.Schedule({3, false}));  // the owner completes it itself
  NEXPECT_TRUE(p.Stop().empty());         // idempotent
  NEXPECT_EQ(h.Ran().size(), 2u);
}

// A retry in progress when Stop() comes finishes; the ones still queued are handed back.
NTEST(ParkedReads, StopReturnsTheRetriesNotRun) {
  std::atomic<bool> started{false}, release{false};
  class Gate final : public readpath::RetryHandler {
   public:
    Gate(std::atomic<bool>* s, std::atomic<bool>* r) : started_(s), release_(r) {}
    void RunRetry(const Retry&) override {
      started_->store(true);
      while (!release_->load()) ::usleep(1000);
    }

   private:
    std::atomic<bool>* started_;
    std::atomic<bool>* release_;
  } gate(&started, &release);
  ParkedReads p(&gate);
  NEXPECT_TRUE(p.Schedule({1, false}));
  NASSERT_TRUE(WaitFor([&] { return started.load(); }));
  NEXPECT_TRUE(p.Schedule({2, false}));
  NEXPECT_TRUE(p.Schedule({3, true}));
  // Released once Stop() has begun: Schedule() fails from then on (the probes queued before
  // that are handed back too).
  std::thread releaser([&] {
    while (p.Schedule({99, false})) ::usleep(1000);
    release.store(true);
  });
  std::deque<Retry> left = p.Stop();
  releaser.join();
  NASSERT_GE(left.size(), 2u);
  NEXPECT_EQ(left[0].token, 2u);
  NEXPECT_EQ(left[1].token, 3u);
  NEXPECT_TRUE(left[1].final);
  for (size_t i = 2; i < left.size(); ++i) NEXPECT_EQ(left[i].token, 99u);
}

}  // namespace
}  // namespace nydus::testing
