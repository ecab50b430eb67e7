// A READ parked on a missing chunk is answered from the fill's decoded bytes before the cache
// write (cache/fill.h RunFill -> ChunkMap::NotifyDecoded -> FuseSession::ChunksDecoded): with the
// store held back, the READ completes with the right bytes while the chunk's bit is still unset,
// a later READ of that chunk parks instead of seeing unwritten data, and the store's release
// publishes the chunk and wakes that READ. A chunk that fails its digest answers nobody; a store
// that fails (ENOSPC) does not keep the READ from its data.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "cache/chunk_map.h"
#include "cache/fill.h"
#include "codec/codec.h"
#include "codec/digest.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "readpath/extent_table.h"
#include "testing.h"

namespace nydus::testing {
namespace {

constexpr uint32_t kChunk = 4096;
constexpr uint32_t kChunks = 4;

uint8_t Byte(uint64_t pos) { return static_cast<uint8_t>((pos * 13 + 5) % 253); }

bool WaitUntil(const std::function<bool()>& cond) {
  for (int i = 0; i < 2000 && !cond(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return cond();
}

// What the binding's SessionWaker does (native/binding/blob_wake.cc), for slot 0.
class Waker final : public cache::ReadyListener {
 public:
  explicit Waker(fuse::FuseSession* s) : s_(s) {}
  void OnReady(std::span<const uint32_t> indices) override {
    std::lock_guard lock(mu_);
    s_->ChunksReady(0, indices);
  }
  void OnDecoded(const cache::DecodedRun& run) override {
    std::lock_guard lock(mu_);
    served += s_->ChunksDecoded(0, run);
  }
  size_t served = 0;

 private:
  fuse::FuseSession* s_;
  std::mutex mu_;
};

// The plain store, held back at one point until Release(): at its Store (which then fails with
// `fail` when that is set), or, given `admit_held`, at its Admit of that chunk (the fill is then
// held between decoding the chunks before it and decoding that one).
class GatedStore final : public cache::ChunkStore {
 public:
  static constexpr uint32_t kAtStore = UINT32_MAX;
  GatedStore(int fd, int fail, uint32_t admit_held = kAtStore)
      : inner_(fd), fail_(fail), admit_held_(admit_held) {}
  int Admit(const cache::FillJob& /*job*/, const cache::FillChunk& c) override {
    if (c.index == admit_held_) Hold();
    return 0;
  }
  int Store(const cache::FillJob& job, std::span<const cache::FillChunk* const> run,
            const uint8_t* decoded) override {
    stores.fetch_add(1);
    if (admit_held_ == kAtStore) Hold();
    if (fail_ != 0) return fail_;
    return inner_.Store(job, run, decoded);
  }
  bool Entered() {
    std::lock_guard lock(mu_);
    return entered_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  std::atomic<int> stores{0};

 private:
  void Hold() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return released_; });
  }

  cache::DataFileStore inner_;
  const int fail_;
  const uint32_t admit_held_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

// A file of kChunks chunks of blob slot 0, chunk i at file and blob offset i * kChunk; an empty
// (sparse) cache file and map with chunk 0 ready, registered on a session with a Waker.
struct Setup {
  TempDir dir;
  std::string data_path = dir.File("blob.data");
  Harness h{AllOps()};
  std::shared_ptr<cache::ChunkMap> map = std::make_shared<cache::ChunkMap>();
  std::shared_ptr<Waker> waker;
  int fd = -1;
  bool ok = false;

  Setup() {
    fd = ::open(data_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::ftruncate(fd, kChunks * kChunk) != 0) return;
    std::vector<uint8_t> c0(kChunk);
    for (uint32_t i = 0; i < kChunk; ++i) c0[i] = Byte(i);
    if (::pwrite(fd, c0.data(), kChunk, 0) != kChunk) return;
    std::string err;
    if (map->Open(dir.File("blob.data.chunk_map"), kChunks, &err) != 0) return;
    map->SetReady(0);
    auto& s = *h.s;
    InitSession(s);
    DrainAll(s);
    if (s.blobs().Register(0, data_path, map, &err) != 0) return;
    waker = std::make_shared<Waker>(h.s.get());
    map->AddListener(waker);
    std::vector<readpath::Extent> ext;
    for (uint32_t c = 0; c < kChunks; ++c) {
      ext.push_back({uint64_t{c} * kChunk, uint64_t{c} * kChunk, kChunk, kChunk, 0, c, 0});
    }
    auto table = readpath::ExtentTable::FromExtents(kChunks * kChunk, ext, &err);
    if (table == nullptr) return;
    auto& open = h.Req(ReqBuilder(FUSE_OPEN, 50, 2).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
    s.OnRequest(&open);
    auto ups = DrainAll(s);
    if (ups.size() != 1) return;
    s.ReplyOpen(ups[0].token(), 7, FOPEN_KEEP_CACHE, std::move(table));
    ok = true;
  }
  ~Setup() {
    map->RemoveListener(waker.get());
    if (fd >= 0) ::close(fd);
  }

  MemRequest& Read(uint64_t offset, uint32_t size) {
    fuse_read_in ri{};
    ri.fh = 7;
    ri.offset = offset;
    ri.size = size;
    auto& r = h.Req(ReqBuilder(FUSE_READ, 100 + offset, 2).Arg(ri).Bytes(), 16 + size, 0, 1000);
    h.s->OnRequest(&r);
    return r;
  }

  // The fill plan of chunk `index` compressed with lz4 into `src` (its digest over the right
  // bytes unless `bad_digest`).
  cache::FillJob Job(uint32_t index, std::vector<uint8_t>* src, bool bad_digest) {
    std::vector<uint8_t> plain(kChunk);
    for (uint32_t i = 0; i < kChunk; ++i) plain[i] = Byte(uint64_t{index} * kChunk + i);
    src->resize(codec::CompressBound(codec::Algo::kLz4Block, kChunk));
    const ssize_t n =
        codec::Compress(codec::Algo::kLz4Block, plain.data(), kChunk, src->data(), src->size(), 0);
    src->resize(n > 0 ? static_cast<size_t>(n) : 0);
    cache::FillChunk c;
    c.src_offset = 0;
    c.src_size = static_cast<uint32_t>(src->size());
    c.file_offset = uint64_t{index} * kChunk;
    c.size = kChunk;
    c.compressed = true;
    c.index = index;
    c.has_digest = true;
    codec::Digest(codec::DigestAlgo::kBlake3, plain.data(), kChunk, c.digest);
    if (bad_digest) c.digest[0] ^= 1;
    cache::FillJob job;
    job.algo = codec::Algo::kLz4Block;
    job.validate = true;
    job.src = src->data();
    job.src_len = src->size();
    job.chunks = {c};
    job.map = map;
    return job;
  }

  // One fill of the adjacent chunks `first`..`last` (one run), compressed back to back in `src`.
  cache::FillJob RunJob(uint32_t first, uint32_t last, std::vector<uint8_t>* src) {
    cache::FillJob job;
    src->clear();
    for (uint32_t i = first; i <= last; ++i) {
      std::vector<uint8_t> one;
      cache::FillJob j1 = Job(i, &one, false);
      cache::FillChunk c = j1.chunks[0];
      c.src_offset = src->size();
      src->insert(src->end(), one.begin(), one.end());
      job.chunks.push_back(c);
    }
    job.algo = codec::Algo::kLz4Block;
    job.validate = true;
    job.src = src->data();
    job.src_len = src->size();
    job.map = map;
    return job;
  }
};

bool RepliesFile(const MemRequest& r, uint64_t offset, uint32_t size) {
  auto b = r.reply();
  if (b.size() != 16u + size) return false;
  for (uint32_t i = 0; i < size; ++i) {
    if (b[16 + i] != Byte(offset + i)) return false;
  }
  return true;
}

NTEST(FillServe, ParkedReadIsAnsweredBeforeTheCacheWrite) {
  Setup f;
  NASSERT_TRUE(f.ok);
  auto& s = *f.h.s;
  // Parks on chunk 1; a READ over chunks 1 and 2 parks too (2 is not in this fill).
  auto& r1 = f.Read(kChunk + 100, 3000);
  auto& r12 = f.Read(kChunk, 2 * kChunk);
  NEXPECT_EQ(r1.completions(), 0);
  NEXPECT_EQ(DrainAll(s).size(), 2u);
  NEXPECT_EQ(s.Stats().parked_now, 2u);

  std::vector<uint8_t> src;
  cache::FillJob job = f.Job(1, &src, false);
  auto* store = new GatedStore(f.fd, 0);
  job.store.reset(store);
  cache::FillResult res;
  std::thread fill([&] { res = cache::RunFill(job); });

  // Answered while the write is held: right bytes, from the fill's memory, bit still unset.
  NEXPECT_TRUE(WaitUntil([&] { return r1.completions() == 1; }));
  NEXPECT_TRUE(RepliesFile(r1, kChunk + 100, 3000));
  NEXPECT_TRUE(WaitUntil([&] { return store->Entered(); }));
  NEXPECT_FALSE(f.map->IsReady(1));
  NEXPECT_EQ(r12.completions(), 0);
  const auto st = s.Stats();
  NEXPECT_EQ(st.fill_served, 1u);
  NEXPECT_EQ(st.read.bytes_from_fill, 3000u);
  NEXPECT_EQ(st.parked_now, 1u);

  // A READ of chunk 1 arriving now must not see the unwritten cache file: it parks.
  auto& later = f.Read(kChunk, kChunk);
  NEXPECT_EQ(later.completions(), 0);
  NEXPECT_EQ(DrainAll(s).size(), 1u);

  // The write lands: the bit is set and the READ that parked meanwhile is served from the file.
  store->Release();
  fill.join();
  NASSERT_EQ(res.status.size(), 1u);
  NEXPECT_EQ(res.status[0], cache::kFillCached);
  NEXPECT_TRUE(f.map->IsReady(1));
  NEXPECT_TRUE(WaitUntil([&] { return later.completions() == 1; }));
  NEXPECT_TRUE(RepliesFile(later, kChunk, kChunk));
  NEXPECT_EQ(r12.completions(), 0);

  // Chunk 2's fill answers the READ over 1 and 2: chunk 1 from the file, 2 from memory.
  std::vector<uint8_t> src2;
  cache::FillJob job2 = f.Job(2, &src2, false);
  auto* store2 = new GatedStore(f.fd, 0);
  job2.store.reset(store2);
  std::thread fill2([&] { res = cache::RunFill(job2); });
  NEXPECT_TRUE(WaitUntil([&] { return r12.completions() == 1; }));
  NEXPECT_TRUE(RepliesFile(r12, kChunk, 2 * kChunk));
  NEXPECT_FALSE(f.map->IsReady(2));
  store2->Release();
  fill2.join();
  NEXPECT_TRUE(f.map->IsReady(2));
  NEXPECT_EQ(s.Stats().parked_now, 0u);
  NEXPECT_EQ(r1.completions(), 1);
}

NTEST(FillServe, ARunsFirstChunkIsServedBeforeTheRestOfTheRunIsDecoded) {
  Setup f;
  NASSERT_TRUE(f.ok);
  auto& s = *f.h.s;
  // The miss of chunk 1 (its fill amplified to chunks 1-3), a READ over chunks 2 and 3, and one
  // of chunk 3 alone.
  auto& r1 = f.Read(kChunk, kChunk);
  auto& r23 = f.Read(2 * kChunk, 2 * kChunk);
  auto& r3 = f.Read(3 * kChunk + 10, 100);
  NEXPECT_EQ(DrainAll(s).size(), 3u);

  std::vector<uint8_t> src;
  cache::FillJob job = f.RunJob(1, 3, &src);
  auto* store = new GatedStore(f.fd, 0, 3);
  job.store.reset(store);
  cache::FillResult res;
  std::thread fill([&] { res = cache::RunFill(job); });

  // Held before chunk 3 is decoded: the READ of chunk 1 has its bytes already; the READ that
  // also needs chunk 3 waits, and nothing is written yet.
  NEXPECT_TRUE(WaitUntil([&] { return store->Entered(); }));
  NEXPECT_TRUE(WaitUntil([&] { return r1.completions() == 1; }));
  NEXPECT_TRUE(RepliesFile(r1, kChunk, kChunk));
  NEXPECT_EQ(r23.completions(), 0);
  NEXPECT_EQ(r3.completions(), 0);
  NEXPECT_EQ(store->stores.load(), 0);
  NEXPECT_FALSE(f.map->IsReady(1));

  // The rest of the run: both READs are answered from its memory before the write, the run is
  // stored with one write and every bit is set.
  store->Release();
  fill.join();
  NEXPECT_EQ(r23.completions(), 1);
  NEXPECT_TRUE(RepliesFile(r23, 2 * kChunk, 2 * kChunk));
  NEXPECT_EQ(r3.completions(), 1);
  NEXPECT_TRUE(RepliesFile(r3, 3 * kChunk + 10, 100));
  NASSERT_EQ(res.status.size(), 3u);
  for (int st : res.status) NEXPECT_EQ(st, cache::kFillCached);
  NEXPECT_EQ(store->stores.load(), 1);
  NEXPECT_EQ(f.waker->served, 3u);
  NEXPECT_EQ(s.Stats().fill_served, 3u);
  for (uint32_t i = 1; i <= 3; ++i) NEXPECT_TRUE(f.map->IsReady(i));
  NEXPECT_EQ(s.Stats().parked_now, 0u);
}

NTEST(FillServe, BadChunksAnswerNobodyAndAFailedStoreDoesNotStopTheRead) {
  Setup f;
  NASSERT_TRUE(f.ok);
  auto& s = *f.h.s;
  auto& r = f.Read(3 * kChunk, kChunk);
  NEXPECT_EQ(DrainAll(s).size(), 1u);

  // The digest does not match: nothing is served, stored or marked.
  std::vector<uint8_t> src;
  cache::FillJob bad = f.Job(3, &src, true);
  auto* gate = new GatedStore(f.fd, 0);
  gate->Release();
  bad.store.reset(gate);
  auto res = cache::RunFill(bad);
  NASSERT_EQ(res.status.size(), 1u);
  NEXPECT_EQ(res.status[0], cache::kFillDigestMismatch);
  NEXPECT_FALSE(gate->Entered());
  NEXPECT_EQ(r.completions(), 0);
  NEXPECT_EQ(f.waker->served, 0u);
  NEXPECT_FALSE(f.map->IsReady(3));

  // The cache file takes no writes and there is no spill: the READ still gets its bytes.
  cache::FillJob full = f.Job(3, &src, false);
  auto* enospc = new GatedStore(f.fd, -ENOSPC);
  enospc->Release();
  full.store.reset(enospc);
  full.allow_spill = false;
  res = cache::RunFill(full);
  NASSERT_EQ(res.status.size(), 1u);
  NEXPECT_EQ(res.status[0], -ENOSPC);
  NEXPECT_EQ(res.store_error, -ENOSPC);
  NEXPECT_EQ(r.completions(), 1);
  NEXPECT_TRUE(RepliesFile(r, 3 * kChunk, kChunk));
  NEXPECT_FALSE(f.map->IsReady(3));
  NEXPECT_EQ(f.waker->served, 1u);
  NEXPECT_EQ(s.Stats().parked_now, 0u);
}

}  // namespace
}  // namespace nydus::testing
