// cache::RunFill, the one cache fill: runs of adjacent chunks are stored once, a chunk that does
// not decode or whose digest does not match is never written nor marked, bits are set only after
// the data is in the file, a store that fails sends the run to the spill, every published chunk
// wakes the map's listeners, and the pool runs fills off the caller's thread. ValidatePlan
// refuses plans that point outside the fetched bytes.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "cache/chunk_map.h"
#include "cache/fill.h"
#include "cache/fill_pool.h"
#include "codec/codec.h"
#include "codec/digest.h"
#include "testing.h"

using nydus::cache::ChunkMap;
using nydus::cache::DataFileStore;
using nydus::cache::FillChunk;
using nydus::cache::FillJob;
using nydus::cache::FillPool;
using nydus::cache::RunFill;
using nydus::cache::ValidatePlan;
using nydus::codec::Algo;

namespace {

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i / 7) ^ seed);
  return v;
}

// Appends `data` compressed with `algo` (or stored) to `src`; returns the chunk.
FillChunk Add(std::vector<uint8_t>* src, const std::vector<uint8_t>& data, Algo algo,
              uint64_t file_offset) {
  static uint32_t next_index = 0;
  FillChunk c;
  c.index = next_index++ % 64;
  c.has_digest = true;
  nydus::codec::Digest(nydus::codec::DigestAlgo::kBlake3, data.data(), data.size(), c.digest);
  c.src_offset = src->size();
  c.file_offset = file_offset;
  c.size = static_cast<uint32_t>(data.size());
  if (algo == Algo::kNone) {
    src->insert(src->end(), data.begin(), data.end());
    c.src_size = c.size;
    return c;
  }
  std::vector<uint8_t> comp(nydus::codec::CompressBound(algo, data.size()));
  ssize_t n = nydus::codec::Compress(algo, data.data(), data.size(), comp.data(), comp.size(), 0);
  src->insert(src->end(), comp.begin(), comp.begin() + n);
  c.src_size = static_cast<uint32_t>(n);
  c.compressed = true;
  return c;
}

std::vector<uint8_t> ReadAt(int fd, uint64_t off, size_t n) {
  std::vector<uint8_t> v(n);
  ssize_t r = ::pread(fd, v.data(), n, static_cast<off_t>(off));
  v.resize(r < 0 ? 0 : static_cast<size_t>(r));
  return v;
}

// Records what it was told, and checks at that moment that the data is in the file.
class Recorder : public nydus::cache::ReadyListener {
 public:
  Recorder(const ChunkMap* map, int fd, const std::vector<FillChunk>* plan,
           const std::vector<std::vector<uint8_t>>* data)
      : map_(map), fd_(fd), plan_(plan), data_(data) {}
  void OnReady(std::span<const uint32_t> indices) override {
    for (uint32_t i : indices) {
      woken.push_back(i);
      for (size_t k = 0; k < plan_->size(); ++k) {
        const FillChunk& c = (*plan_)[k];
        if (c.index != i || !map_->IsReady(i)) continue;
        if (ReadAt(fd_, c.file_offset, c.size) != (*data_)[k]) bad_at_wake++;
      }
    }
  }
  std::vector<uint32_t> woken;
  int bad_at_wake = 0;

 private:
  const ChunkMap* map_;
  int fd_;
  const std::vector<FillChunk>* plan_;
  const std::vector<std::vector<uint8_t>>* data_;
};

std::shared_ptr<ChunkMap> OpenMap(const nydus::testing::TempDir& dir, const char* name) {
  auto map = std::make_shared<ChunkMap>();
  std::string err;
  if (map->Open(dir.File(name), 64, &err) != 0) return nullptr;
  return map;
}

NTEST(CacheFill, RunsBadChunksDigestsSpillAndWakeUps) {
  for (Algo algo : {Algo::kLz4Block, Algo::kZstd}) {
    nydus::testing::TempDir dir;
    const std::string path = dir.File("blob.data");
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    NASSERT_GE(fd, 0);
    NASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
    auto map = OpenMap(dir, "blob.data.chunk_map");
    NASSERT_TRUE(map != nullptr);
    std::vector<uint8_t> src;
    std::vector<std::vector<uint8_t>> data = {Pattern(4096, 1), Pattern(8192, 2), Pattern(4096, 3),
                                              Pattern(5000, 4), Pattern(4096, 5)};
    // In plan order d, e(digest wrong), a, c(corrupt), b: runs are found by file offset.
    std::vector<FillChunk> plan = {Add(&src, data[3], Algo::kNone, 65536),
                                   Add(&src, data[4], algo, 73728), Add(&src, data[0], algo, 0),
                                   Add(&src, data[2], algo, 12288), Add(&src, data[1], algo, 4096)};
    std::vector<std::vector<uint8_t>> by_plan = {data[3], data[4], data[0], data[2], data[1]};
    plan[1].digest[0] ^= 1;
    src[plan[3].src_offset] ^= 0xff;
    src[plan[3].src_offset + 1] ^= 0xff;
    NEXPECT_EQ(ValidatePlan(plan, src.size()), "");
    auto rec = std::make_shared<Recorder>(map.get(), fd, &plan, &by_plan);
    map->AddListener(rec);
    FillJob job;
    job.algo = algo;
    job.validate = true;
    job.src = src.data();
    job.src_len = src.size();
    job.chunks = plan;
    job.map = map;
    job.store = std::make_unique<DataFileStore>(fd);
    auto res = RunFill(job);
    NASSERT_EQ(res.status.size(), size_t{5});
    NEXPECT_EQ(res.status[0], nydus::cache::kFillCached);
    NEXPECT_EQ(res.status[1], nydus::cache::kFillDigestMismatch);
    NEXPECT_EQ(res.status[2], nydus::cache::kFillCached);
    NEXPECT_EQ(res.status[3], -EBADMSG);
    NEXPECT_EQ(res.status[4], nydus::cache::kFillCached);
    NEXPECT_EQ(res.store_error, 0);
    NEXPECT_EQ(res.thread_id, static_cast<int>(::syscall(SYS_gettid)));
    for (size_t k = 0; k < plan.size(); ++k) {
      const bool good = res.status[k] == nydus::cache::kFillCached;
      NEXPECT_EQ(map->IsReady(plan[k].index), good);
      const auto want = good ? by_plan[k] : std::vector<uint8_t>(plan[k].size, 0);
      NEXPECT_TRUE(ReadAt(fd, plan[k].file_offset, plan[k].size) == want);  // bad: never written
    }
    NEXPECT_EQ(rec->woken.size(), size_t{3});
    NEXPECT_EQ(rec->bad_at_wake, 0);
    ::close(fd);

    // A file opened read-only: the store fails and the good chunks go to the spill instead.
    fd = ::open(path.c_str(), O_RDONLY);
    NASSERT_GE(fd, 0);
    auto map2 = OpenMap(dir, "other.chunk_map");
    NASSERT_TRUE(map2 != nullptr);
    job.map = map2;
    job.store = std::make_unique<DataFileStore>(fd);
    res = RunFill(job);
    NEXPECT_EQ(res.store_error, -EBADF);
    NEXPECT_EQ(res.status[0], nydus::cache::kFillSpilled);
    NEXPECT_EQ(res.status[3], -EBADMSG);
    NEXPECT_EQ(res.status[4], nydus::cache::kFillSpilled);
    NEXPECT_FALSE(map2->IsReady(plan[0].index));
    NASSERT_TRUE(map2->spill() != nullptr);
    NEXPECT_TRUE(map2->spill()->IsReady(plan[0].index));
    NEXPECT_FALSE(map2->spill()->IsReady(plan[1].index));
    NEXPECT_TRUE(ReadAt(map2->spill()->fd(), plan[4].file_offset, plan[4].size) == by_plan[4]);
    // Without the spill the store's errno is the chunk's outcome.
    auto map3 = OpenMap(dir, "third.chunk_map");
    job.map = map3;
    job.allow_spill = false;
    res = RunFill(job);
    NEXPECT_EQ(res.status[0], -EBADF);
    NEXPECT_FALSE(map3->IsReady(plan[0].index));
    ::close(fd);
  }
}

NTEST(CacheFill, ThePoolRunsFillsOffTheCallersThread) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> tids;
  FillPool pool(2);  // declared last: joined before what its tasks use goes
  const int self = static_cast<int>(::syscall(SYS_gettid));
  for (int i = 0; i < 8; ++i) {
    pool.Submit([&] {
      FillJob job;
      auto res = RunFill(job);
      std::lock_guard lock(mu);
      tids.push_back(res.thread_id);
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  NASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return tids.size() == 8; }));
  for (int t : tids) NEXPECT_NE(t, self);
}

long ThreadMinorFaults() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

// A fill thread decodes into the buffer it kept from its last fill (no fresh pages to fault in
// per run), and neither a smaller run after a larger one nor a run larger than that buffer (which
// gets its own) writes anything but its own bytes.
NTEST(CacheFill, AThreadReusesItsDecodeBuffer) {
  nydus::testing::TempDir dir;
  const std::string path = dir.File("blob.data");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  NASSERT_GE(fd, 0);
  auto map = OpenMap(dir, "blob.data.chunk_map");
  NASSERT_TRUE(map != nullptr);
  constexpr size_t kMiB = size_t{1} << 20;
  // Runs of 2 MiB, 2 MiB, 5 MiB (over the kept 4 MiB) and 4 KiB, one after the other in the file.
  const std::vector<std::vector<size_t>> runs = {
      {kMiB, kMiB}, {kMiB, kMiB}, {kMiB, kMiB, kMiB, kMiB, kMiB}, {4096}};
  std::vector<long> faults;
  bool all_cached = true;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> written;
  std::thread t([&] {  // a fresh thread: its kept buffer starts empty
    uint64_t at = 0;
    uint8_t seed = 10;
    for (const auto& sizes : runs) {
      std::vector<uint8_t> src;
      std::vector<FillChunk> plan;
      for (size_t n : sizes) {
        written.emplace_back(at, Pattern(n, seed++));
        plan.push_back(Add(&src, written.back().second, Algo::kLz4Block, at));
        at += n;
      }
      FillJob job;
      job.algo = Algo::kLz4Block;
      job.src = src.data();
      job.src_len = src.size();
      job.chunks = plan;
      job.map = map;
      job.store = std::make_unique<DataFileStore>(fd);
      const long before = ThreadMinorFaults();
      auto res = RunFill(job);
      faults.push_back(ThreadMinorFaults() - before);
      for (int st : res.status) all_cached = all_cached && st == nydus::cache::kFillCached;
    }
  });
  t.join();
  NEXPECT_TRUE(all_cached);
  for (const auto& [off, data] : written) NEXPECT_TRUE(ReadAt(fd, off, data.size()) == data);
  NASSERT_EQ(faults.size(), size_t{4});
  // A fresh 2 MiB buffer faults in 512 pages; the kept one faulted them in during the first run.
  NEXPECT_LT(faults[1], 64);
  ::close(fd);
}

NTEST(CacheFill, PlansOutsideTheFetchedBytesAreRefused) {
  std::vector<uint8_t> src(100);
  FillChunk c;
  c.src_offset = 90;
  c.src_size = 20;
  c.size = 20;
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.src_offset = ~uint64_t{0} - 5;  // offset + size would wrap
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.src_offset = 0;
  c.size = 0;
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.size = 30;  // stored != uncompressed for an uncompressed chunk
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.size = 20;
  c.file_offset = uint64_t{1} << 60;
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.file_offset = 0;
  NEXPECT_EQ(ValidatePlan({c}, src.size()), "");
  // Even without validation the decoder never reads outside the buffer.
  c.src_offset = 95;
  nydus::testing::TempDir dir;
  FillJob job;
  job.algo = Algo::kZstd;
  job.src = src.data();
  job.src_len = src.size();
  job.chunks = {c};
  job.map = OpenMap(dir, "map");
  NASSERT_TRUE(job.map != nullptr);
  auto res = RunFill(job);
  NEXPECT_EQ(res.status[0], -EINVAL);
  NEXPECT_FALSE(job.map->IsReady(0));
}

}  // namespace
