// Per-slot operation counters (fuse/fop_counters.h): upstream's StatsFop indexes and buckets,
// slots by node id, per-thread blocks summed on read, and the session counting requests it
// answers natively and with the handler's answers.
#include <fcntl.h>
#include <sys/stat.h>

#include <thread>

#include "fuse/fop_counters.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "testing.h"

namespace nydus::testing {
namespace {

using fuse::FopCounters;
using fuse::FopSnapshot;

NTEST(FopCounters, UpstreamIndexesAndBuckets) {
  NEXPECT_EQ(fuse::FopIndexOf(FUSE_GETATTR), 0);
  NEXPECT_EQ(fuse::FopIndexOf(FUSE_READ), 4);
  NEXPECT_EQ(fuse::FopIndexOf(FUSE_LOOKUP), 9);
  NEXPECT_EQ(fuse::FopIndexOf(FUSE_BATCH_FORGET), 14);
  NEXPECT_EQ(fuse::FopIndexOf(FUSE_WRITE), -1);
  // upstream utils/src/metrics.rs test_request_size_index
  NEXPECT_EQ(fuse::ReadSizeBucket(0x3ff), 0u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x400), 1u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0xfff), 1u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x1000), 2u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x4000), 3u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x1ffff), 4u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x20000), 5u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x80000), 6u);
  NEXPECT_EQ(fuse::ReadSizeBucket(0x100000), 7u);
  NEXPECT_EQ(fuse::LatencyBucket(200), 0u);
  NEXPECT_EQ(fuse::LatencyBucket(201), 1u);
  NEXPECT_EQ(fuse::LatencyBucket(2000001), 7u);
}

NTEST(FopCounters, SlotsByNodeIdAndThreadsSummed) {
  FopCounters c;
  c.SetSlotShift(44);
  NEXPECT_EQ(c.SlotOf(5), 0u);
  NEXPECT_EQ(c.SlotOf((3ull << 44) | 7), 3u);
  NEXPECT_EQ(c.SlotOf(1), 0u);
  c.SetRootSlot(2);
  NEXPECT_EQ(c.SlotOf(1), 2u);
  const uint64_t node = (3ull << 44) | 7;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        c.Count(node, FUSE_LOOKUP, false, 0);
        c.CountRead(node, false, 4096, 10);
      }
      c.Count(node, FUSE_GETATTR, true, 5);
      c.CountRead(node, true, 0, 300);
    });
  }
  for (auto& t : ts) t.join();
  FopSnapshot s;
  c.Snapshot(3, &s);
  NEXPECT_EQ(s.hits[9], 4000u);
  NEXPECT_EQ(s.hits[4], 4000u);
  NEXPECT_EQ(s.errors[4], 4u);
  NEXPECT_EQ(s.errors[0], 4u);
  NEXPECT_EQ(s.latency_us[0], 20u);
  NEXPECT_EQ(s.data_read, 4000u * 4096u);
  NEXPECT_EQ(s.block_count_read[2], 4000u);
  NEXPECT_EQ(s.block_count_read[0], 4u);  // a failed READ counts in the first size bucket
  NEXPECT_EQ(s.read_latency_dist[0], 4000u);
  NEXPECT_EQ(s.read_latency_dist[1], 4u);
  c.Snapshot(0, &s);
  NEXPECT_EQ(s.hits[9], 0u);
  // A thread that counts again later reuses its block: the sums stay exact.
  c.Count(node, FUSE_LOOKUP, false, 0);
  c.Snapshot(3, &s);
  NEXPECT_EQ(s.hits[9], 4001u);
}

NTEST(FopCounters, SessionCountsNativeAndHandlerAnswers) {
  auto o = AllOps();
  o.handler_ops.reset(FUSE_FORGET);
  o.immutable = true;
  Harness h(o);
  auto& s = *h.s;
  s.fops().SetSlotShift(44);
  InitSession(s);
  DrainAll(s);
  const uint64_t dir = (1ull << 44) | 1;
  for (int i = 0; i < 2; ++i) {  // the first by the handler, the second from the reply cache
    auto& r = h.Req(ReqBuilder(FUSE_LOOKUP, 9, dir).Name("f").Bytes(), 16 + 128);
    s.OnRequest(&r);
    for (auto& u : DrainAll(s)) {
      auto rec = EntryRecord(static_cast<double>(dir + 5), S_IFREG | 0644, 4096);
      NEXPECT_EQ(s.ReplyEntry(u.token(), rec.data()), 0);
    }
  }
  auto& st = h.Req(ReqBuilder(FUSE_STATFS, 10, dir).Bytes(), 16 + 80);
  s.OnRequest(&st);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(s.ReplyError(ups[0].token(), ENOSYS), 0);
  auto& w = h.Req(ReqBuilder(FUSE_OPEN, 11, dir + 5).Arg(fuse_open_in{O_WRONLY, 0}).Bytes(), 32);
  s.OnRequest(&w);  // EROFS, answered natively
  FopSnapshot snap;
  s.fops().Snapshot(1, &snap);
  NEXPECT_EQ(snap.hits[9], 2u);
  NEXPECT_EQ(snap.errors[5], 1u);
  NEXPECT_EQ(snap.errors[2], 1u);
  s.fops().Snapshot(0, &snap);
  NEXPECT_EQ(snap.hits[9], 0u);
}

}  // namespace
}  // namespace nydus::testing
