// A handler serving several filesystems in one session (a pseudo root with mounts): forgetting
// the cached answers of one node range, dropping the handles that read from an unmounted
// filesystem's blobs, and failing READs still parked on its nodes, while other ranges keep
// their cached answers, handles and parked READs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cache/chunk_map.h"
#include "fuse/handle_table.h"
#include "fuse/reply_cache.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "readpath/extent_table.h"
#include "readpath/parked_reads.h"
#include "testing.h"
#include "vhost_harness.h"

namespace nydus::testing {
namespace {

using fuse::HandleTable;
using fuse::ReplyCache;
using readpath::Extent;
using readpath::ExtentTable;

constexpr uint64_t kRange = 1ull << 44;  // node ids of mount slot s: [s << 44, (s + 1) << 44)
constexpr uint32_t kChunk = 4096;

fuse_entry_out Entry(uint64_t nodeid) {
  fuse_entry_out e{};
  e.nodeid = nodeid;
  e.attr.ino = nodeid;
  e.attr.mode = S_IFREG | 0644;
  return e;
}

NTEST(ReplyCacheRanges, InvalidateNodesDropsEntriesByParentOrTargetAndAttrs) {
  ReplyCache c;
  c.PutEntry(1, "a", 1, Entry(kRange + 1));           // pseudo root -> mount root (crossing)
  c.PutEntry(kRange + 1, "f", 1, Entry(kRange + 9));  // inside mount 1
  c.PutEntry(2 * kRange + 1, "g", 1, Entry(2 * kRange + 5));  // inside mount 2
  c.PutEntry(1, "b", 1, Entry(0));                            // negative entry in the pseudo root
  fuse_attr_out a{};
  c.PutAttr(kRange + 9, a);
  c.PutAttr(2 * kRange + 5, a);
  NEXPECT_EQ(c.InvalidateNodes(kRange, 2 * kRange), 3u);  // "a" (target), "f" (parent), attr
  fuse_entry_out e{};
  NEXPECT_FALSE(c.GetEntry(1, "a", 1, &e));
  NEXPECT_FALSE(c.GetEntry(kRange + 1, "f", 1, &e));
  NEXPECT_FALSE(c.GetAttr(kRange + 9, &a));
  NEXPECT_TRUE(c.GetEntry(2 * kRange + 1, "g", 1, &e));
  NEXPECT_TRUE(c.GetAttr(2 * kRange + 5, &a));
  NEXPECT_TRUE(c.GetEntry(1, "b", 1, &e));
  // The pseudo range [0, 2^44) takes the root's answers, negative ones included.
  NEXPECT_EQ(c.InvalidateNodes(0, kRange), 1u);
  NEXPECT_FALSE(c.GetEntry(1, "b", 1, &e));
  NEXPECT_EQ(c.InvalidateNodes(5, 5), 0u);  // empty range
  NEXPECT_EQ(c.entries(), 1u);
}

fuse::SessionOptions ImmutableOps() {
  auto o = AllOps();
  o.handler_ops.reset(FUSE_FORGET);
  o.immutable = true;
  return o;
}

// LOOKUP `name` in `parent`; answers an upcall with `answer` and reports whether one was made.
bool Lookup(Harness& h, uint64_t parent, const char* name, uint64_t answer) {
  auto& r = h.Req(ReqBuilder(FUSE_LOOKUP, 9, parent).Name(name).Bytes(), 16 + 128);
  h.s->OnRequest(&r);
  auto ups = DrainAll(*h.s);
  if (!ups.empty()) {
    auto rec = EntryRecord(static_cast<double>(answer), S_IFREG | 0644, 4096);
    NEXPECT_EQ(h.s->ReplyEntry(ups[0].token(), rec.data()), 0);
  }
  NEXPECT_EQ(r.completions(), 1);
  NEXPECT_EQ(U64At(r.reply(), 16), answer);
  return !ups.empty();
}

NTEST(FuseSessionRanges, InvalidatedRangeGoesBackToTheHandler) {
  Harness h(ImmutableOps());
  InitSession(*h.s);
  DrainAll(*h.s);
  NEXPECT_TRUE(Lookup(h, 1, "m", kRange + 1));
  NEXPECT_TRUE(Lookup(h, 2 * kRange + 1, "x", 2 * kRange + 7));
  NEXPECT_FALSE(Lookup(h, 1, "m", kRange + 1));
  NEXPECT_FALSE(Lookup(h, 2 * kRange + 1, "x", 2 * kRange + 7));
  NEXPECT_EQ(h.s->InvalidateNodes(0, kRange, {}), 0u);
  // The pseudo root's answer changed (unmounted: now a pseudo directory, node 2).
  NEXPECT_TRUE(Lookup(h, 1, "m", 2));
  // Mount 2's answers were not touched.
  NEXPECT_FALSE(Lookup(h, 2 * kRange + 1, "x", 2 * kRange + 7));
}

// A cache file of two chunks, both ready; a file of two extents reading it through `slot`.
struct TwoChunks {
  TempDir dir;
  std::string path = dir.File("blob.data");
  std::vector<uint8_t> bytes = std::vector<uint8_t>(2 * kChunk);
  TwoChunks() {
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 13 + 1);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    (void)n;
    ::close(fd);
  }
  std::shared_ptr<const ExtentTable> Table(uint32_t slot) const {
    std::vector<Extent> ex = {{0, 0, kChunk, kChunk, slot, 0, 0},
                              {kChunk, kChunk, kChunk, kChunk, slot, 1, 0}};
    std::string err;
    return ExtentTable::FromExtents(2 * kChunk, ex, &err);
  }
};

uint64_t Open(Harness& h, uint64_t nodeid, uint64_t fh, std::shared_ptr<const ExtentTable> t) {
  auto& open = h.Req(ReqBuilder(FUSE_OPEN, 50, nodeid).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
  h.s->OnRequest(&open);
  auto ups = DrainAll(*h.s);
  if (!ups.empty()) h.s->ReplyOpen(ups[0].token(), fh, FOPEN_KEEP_CACHE, std::move(t));
  return U64At(open.reply(), 16);
}

// READ 4 KiB at 0 on `fh`: true when answered natively (no upcall); an upcall is failed EBADF.
bool ReadNatively(Harness& h, uint64_t nodeid, uint64_t fh) {
  fuse_read_in ri{};
  ri.fh = fh;
  ri.size = kChunk;
  auto& rd = h.Req(ReqBuilder(FUSE_READ, 60, nodeid).Arg(ri).Bytes(), 16 + kChunk);
  h.s->OnRequest(&rd);
  auto ups = DrainAll(*h.s);
  for (auto& u : ups) h.s->ReplyError(u.token(), EBADF);
  NEXPECT_EQ(rd.completions(), 1);
  return ups.empty() && rd.header().error == 0;
}

// A session past INIT with the two-chunk cache file at hand.
struct Started {
  explicit Started(fuse::SessionOptions o) : h(o) {
    InitSession(*h.s);
    DrainAll(*h.s);
  }
  TwoChunks f;
  Harness h;
};

NTEST(FuseSessionRanges, HandlesReadingUnmountedBlobsAreDropped) {
  Started st(ImmutableOps());
  auto& [f, h] = st;
  auto& s = *h.s;
  std::string err;
  NASSERT_EQ(s.blobs().Register(7, f.path, nullptr, &err), 0);
  NASSERT_EQ(s.blobs().Register(9, f.path, nullptr, &err), 0);
  const uint64_t a = kRange + 5, b = 2 * kRange + 5;  // a file in mount 1, one in mount 2
  NEXPECT_EQ(Open(h, a, 11, f.Table(7)), 11u);
  const uint64_t native_fh = Open(h, a, 0, nullptr);  // from the remembered answer
  NEXPECT_TRUE(native_fh >= (1ull << 53));
  NEXPECT_EQ(Open(h, b, 12, f.Table(9)), 12u);
  NEXPECT_TRUE(ReadNatively(h, a, 11));
  NEXPECT_TRUE(ReadNatively(h, a, native_fh));
  NEXPECT_EQ(s.Stats().extent_tables, 3u);

  const uint32_t gone[] = {7};
  NEXPECT_EQ(s.InvalidateNodes(kRange, 2 * kRange, gone), 2u);
  NEXPECT_EQ(s.Stats().extent_tables, 1u);
  // Old handles now reach the handler (which knows the mount is gone), never the blob.
  NEXPECT_FALSE(ReadNatively(h, a, 11));
  NEXPECT_FALSE(ReadNatively(h, a, native_fh));
  // The OPEN answer was forgotten with the range: the next OPEN asks the handler.
  auto& again = h.Req(ReqBuilder(FUSE_OPEN, 51, a).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
  s.OnRequest(&again);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(s.ReplyError(ups[0].token(), ENOENT), 0);
  // Mount 2 keeps its handle.
  NEXPECT_TRUE(ReadNatively(h, b, 12));
}

NTEST(FuseSessionRanges, FailParkedFailsOnlyTheRangesParkedReads) {
  Started st(AllOps());
  auto& [f, h] = st;
  auto& s = *h.s;
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  NASSERT_EQ(map->Open(f.dir.File("blob.map"), 2, &err), 0);
  NASSERT_EQ(s.blobs().Register(3, f.path, map, &err), 0);
  const uint64_t a = kRange + 5, b = 2 * kRange + 5;
  Open(h, a, 1, f.Table(3));
  Open(h, b, 2, f.Table(3));
  fuse_read_in ri{};
  ri.size = kChunk;
  ri.fh = 1;
  auto& ra = h.Req(ReqBuilder(FUSE_READ, 61, a).Arg(ri).Bytes(), 16 + kChunk);
  ri.fh = 2;
  auto& rb = h.Req(ReqBuilder(FUSE_READ, 62, b).Arg(ri).Bytes(), 16 + kChunk);
  s.OnRequest(&ra);
  s.OnRequest(&rb);
  auto misses = DrainAll(s);
  NASSERT_EQ(misses.size(), 2u);
  NEXPECT_EQ(s.Stats().parked_now, 2u);
  NEXPECT_EQ(s.FailParked(kRange, 2 * kRange, EIO), 1u);
  NEXPECT_EQ(ra.completions(), 1);
  NEXPECT_EQ(ra.header().error, -EIO);
  NEXPECT_EQ(rb.completions(), 0);
  // The failed READ's own miss answer is stale now; the other one still completes.
  NEXPECT_EQ(s.ResolveMiss(misses[0].token(), 0), -ESTALE);
  map->SetReady(0);
  const uint32_t idx[] = {0};
  NEXPECT_EQ(s.ChunksReady(3, idx), 1u);
  for (int i = 0; i < 2000 && rb.completions() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  NEXPECT_EQ(rb.completions(), 1);
  NEXPECT_EQ(rb.header().error, 0);
  NEXPECT_EQ(s.Stats().parked_now, 0u);
  NEXPECT_EQ(ra.completions(), 1);
}

// The handle table's part of InvalidateNodes, on its own: cached OPENs of the range forgotten,
// handles reading a gone blob slot dropped (holes read no blob), everything else kept.
NTEST(HandleTableRanges, InvalidateForgetsOpensOfTheRangeAndDropsHandlesOfGoneBlobs) {
  HandleTable h;
  std::string err;
  auto on = [&](uint32_t slot) {
    return ExtentTable::FromExtents(kChunk, {{0, 0, kChunk, kChunk, slot, 0, 0}}, &err);
  };
  auto hole =
      ExtentTable::FromExtents(kChunk, {{0, 0, kChunk, 0, 7, 0, readpath::kExtentHole}}, &err);
  NASSERT_TRUE(hole != nullptr);
  h.Set(1, on(7));
  h.Set(2, on(9));
  h.Set(3, hole);
  h.RememberOpen(kRange + 5, 0, on(7));
  h.RememberOpen(2 * kRange + 5, 0, on(9));
  uint64_t native_fh = 0;
  uint32_t flags = 0;
  NASSERT_TRUE(h.OpenFromCache(kRange + 5, &native_fh, &flags));
  const uint32_t gone[] = {7, 5000};  // a slot beyond the registry is ignored
  NEXPECT_EQ(h.Invalidate(kRange, 2 * kRange, gone), 2u);
  NEXPECT_TRUE(h.Find(1) == nullptr);
  NEXPECT_TRUE(h.Find(native_fh) == nullptr);
  NEXPECT_TRUE(h.Find(2) != nullptr);
  NEXPECT_TRUE(h.Find(3) != nullptr);
  uint64_t fh = 0;
  NEXPECT_FALSE(h.OpenFromCache(kRange + 5, &fh, &flags));
  NEXPECT_TRUE(h.OpenFromCache(2 * kRange + 5, &fh, &flags));
  // No blob slots: only the range's cached OPENs go.
  NEXPECT_EQ(h.Invalidate(2 * kRange, 3 * kRange, {}), 0u);
  NEXPECT_FALSE(h.OpenFromCache(2 * kRange + 5, &fh, &flags));
  NEXPECT_TRUE(h.Find(2) != nullptr);
}

// TakeRetriesIf waits out a matching retry that is running, then takes the matching queued ones.
NTEST(ParkedReadsRanges, TakeRetriesIfWaitsForTheRunningOneAndTakesTheQueued) {
  // Each retry token t blocks until release[t] is set, so the thread stays on retry 2 (which the
  // taker does not accept) while the taker runs; otherwise the thread could run 3 first.
  std::atomic<bool> release[4] = {false, false, false, false};
  std::atomic<uint64_t> running{0};
  class Gate final : public readpath::RetryHandler {
   public:
    Gate(std::atomic<bool>* r, std::atomic<uint64_t>* now) : release_(r), now_(now) {}
    void RunRetry(const readpath::Retry& r) override {
      now_->store(r.token);
      while (r.token < 4 && !release_[r.token].load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      now_->store(0);
    }

   private:
    std::atomic<bool>* release_;
    std::atomic<uint64_t>* now_;
  } gate(release, &running);
  readpath::ParkedReads p(&gate);
  NEXPECT_TRUE(p.Schedule({1, false}));
  NASSERT_TRUE(vhost::testing::WaitFor([&] { return running.load() == 1; }));
  NEXPECT_TRUE(p.Schedule({2, false}));
  NEXPECT_TRUE(p.Schedule({3, true}));
  std::atomic<bool> taken{false};
  std::vector<readpath::Retry> got;
  std::thread taker([&] {
    got = p.TakeRetriesIf([](uint64_t token) { return token % 2 == 1; });
    taken.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  NEXPECT_FALSE(taken.load());  // retry 1 is running and matches
  release[1].store(true);
  taker.join();
  NASSERT_EQ(got.size(), 1u);
  NEXPECT_EQ(got[0].token, 3u);
  NEXPECT_TRUE(got[0].final);
  // Retry 2 was left for the thread (it may be running it now); nothing queued matches token 3.
  NEXPECT_TRUE(p.TakeRetriesIf([](uint64_t token) { return token == 3; }).empty());
  release[2].store(true);
  release[3].store(true);
  NEXPECT_TRUE(p.Stop().size() <= 1u);
}

}  // namespace
}  // namespace nydus::testing
