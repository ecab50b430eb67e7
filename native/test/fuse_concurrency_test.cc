// Exactly-once under concurrency: several transport threads push LOOKUPs and READs (cache hits
// and misses) while an owner thread drains upcalls, answers them, fills chunks and wakes parked
// READs both ways (ChunksReady and ResolveMiss) at once. Meant for the TSan build too
// (npm run test:asan -- --tsan FuseConcurrency).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "cache/chunk_map.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "testing.h"

namespace nydus::testing {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr uint32_t kChunks = 64;

NTEST(FuseConcurrency, EveryRequestCompletesOnceUnderRaces) {
  TempDir dir;
  std::vector<uint8_t> data(kChunks * kChunk);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + 7);
  {
    int fd = ::open(dir.File("cache").c_str(), O_WRONLY | O_CREAT, 0644);
    NASSERT_TRUE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  NASSERT_EQ(map->Open(dir.File("map"), kChunks, &err), 0);
  Harness h(AllOps());
  auto& s = *h.s;
  InitSession(s);
  DrainAll(s);
  NASSERT_EQ(s.blobs().Register(0, dir.File("cache"), map, &err), 0);
  std::vector<readpath::Extent> ext;
  for (uint32_t c = 0; c < kChunks; ++c)
    ext.push_back({c * uint64_t{kChunk}, c * uint64_t{kChunk}, kChunk, kChunk, 0, c, 0});
  s.SetExtents(1, readpath::ExtentTable::FromExtents(data.size(), ext, &err));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 400;
  std::vector<std::vector<MemRequest*>> reqs(kThreads);
  std::vector<std::vector<uint64_t>> offsets(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      if (i % 3 == 0) {
        reqs[t].push_back(
            &h.Req(ReqBuilder(FUSE_LOOKUP, t * 10000 + i).Name("n").Bytes(), 16 + 128));
        offsets[t].push_back(0);
      } else {
        fuse_read_in ri{};
        ri.fh = 1;
        ri.offset = ((t * 7919 + i * 104729) % (kChunks * kChunk - 9000));
        ri.size = 8192;
        reqs[t].push_back(&h.Req(ReqBuilder(FUSE_READ, t * 10000 + i).Arg(ri).Bytes(), 16 + 8192));
        offsets[t].push_back(ri.offset);
      }
    }
  }
  std::atomic<int> producers_done{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (MemRequest* r : reqs[t]) s.OnRequest(r);
      producers_done.fetch_add(1);
    });
  }
  // The owner: answer everything, alternating how misses are resolved.
  const auto entry = EntryRecord(2, S_IFREG | 0644, 10);
  int n = 0;
  for (;;) {
    auto ups = DrainAll(s, 16);
    for (const auto& u : ups) {
      if (u.opcode() == FUSE_LOOKUP) {
        s.ReplyEntry(u.token(), entry.data());
      } else if (u.opcode() == fuse::kUpcallReadMiss) {
        const uint32_t count = static_cast<uint32_t>(u.rec[UpcallSlot::kA3]);
        std::vector<uint32_t> idx;
        for (uint32_t k = 0; k < count; ++k) {
          idx.push_back(U32At(u.bytes, k * 8 + 4));
          map->SetReady(idx.back());
        }
        if (++n % 2 == 0) {
          s.ChunksReady(0, idx);
        } else {
          s.ResolveMiss(u.token(), 0);
        }
      }
    }
    bool all = producers_done.load() == kThreads;
    for (int t = 0; all && t < kThreads; ++t) {
      for (MemRequest* r : reqs[t]) all = all && r->completions() == 1;
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (auto& p : producers) p.join();
  int reads = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < reqs[t].size(); ++i) {
      MemRequest* r = reqs[t][i];
      NEXPECT_EQ(r->completions(), 1);
      NEXPECT_EQ(r->header().error, 0);
      if (i % 3 != 0) {
        ++reads;
        auto b = r->reply();
        if (b.size() != 16 + 8192 ||
            !std::equal(b.begin() + 16, b.end(), data.begin() + static_cast<long>(offsets[t][i]))) {
          NEXPECT_EQ(b.size(), 16u + 8192u);
          RecordFailure(__FILE__, __LINE__, "READ content differs");
          return;
        }
      }
    }
  }
  auto st = s.Stats();
  NEXPECT_EQ(st.pending_now, 0u);
  NEXPECT_EQ(st.parked_now, 0u);
  NEXPECT_EQ(st.garbage_replies, 0u);
  NEXPECT_GT(st.read_misses, 0u);
  NEXPECT_EQ(st.fast_reads, static_cast<uint64_t>(reads));
}

}  // namespace
}  // namespace nydus::testing
