// Cache robustness in the core: damaged chunk maps are rebuilt only by their exclusive opener,
// the flock protocol between daemons sharing a work_dir, data-extent listing of sparse cache
// files, and READs served from the in-memory spill when the cache file could not take a chunk.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "cache/chunk_map.h"
#include "cache/data_extents.h"
#include "readpath/reader.h"
#include "testing.h"

namespace nydus::testing {
namespace {

using cache::ChunkMap;

void WriteBytes(const std::string& path, const std::vector<uint8_t>& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ssize_t n = ::write(fd, data.data(), data.size());
  (void)n;
  ::close(fd);
}

NTEST(CacheRobust, ExclusiveOpenerRebuildsDamagedMaps) {
  TempDir dir;
  std::string path = dir.File("m");
  std::string err;
  ChunkMap::OpenOptions repair;
  repair.repair = true;
  ChunkMap::OpenInfo info;
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 16, repair, &info, &err), 0);
    NEXPECT_TRUE(info.exclusive);
    NEXPECT_TRUE(info.repaired.empty());
    m.SetReady(3);
  }
  // Wrong chunk count (size): rebuilt empty, with the reason.
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 17, repair, &info, &err), 0);
    NEXPECT_TRUE(info.repaired.find("expected") != std::string::npos);
    NEXPECT_EQ(m.ReadyCount(), 0u);
    m.SetReady(5);
  }
  // Truncated into the header, and garbage: both rebuilt.
  NASSERT_EQ(::truncate(path.c_str(), 100), 0);
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 17, repair, &info, &err), 0);
    NEXPECT_FALSE(info.repaired.empty());
    NEXPECT_FALSE(m.IsReady(5));
  }
  WriteBytes(path, std::vector<uint8_t>(ChunkMap::FileSize(17), 0xff));
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 17, repair, &info, &err), 0);
    NEXPECT_TRUE(info.repaired.find("magic") != std::string::npos);
    NEXPECT_EQ(m.ReadyCount(), 0u);
  }
  // A lying all_ready word is cleared; the bits decide.
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 17, repair, &info, &err), 0);
    m.SetReady(1);
  }
  {
    int fd = ::open(path.c_str(), O_RDWR);
    uint32_t all = ChunkMap::kAllReady;
    NASSERT_EQ(::pwrite(fd, &all, 4, 12), 4);
    ::close(fd);
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 17, repair, &info, &err), 0);
    NEXPECT_FALSE(m.AllReady());
    NEXPECT_TRUE(m.IsReady(1));
    NEXPECT_FALSE(m.IsReady(2));
    NEXPECT_TRUE(m.ClearReady(1));
    NEXPECT_FALSE(m.ClearReady(1));
    NEXPECT_FALSE(m.IsReady(1));
  }
}

NTEST(CacheRobust, SecondOpenerSharesAndNeverRepairs) {
  TempDir dir;
  std::string path = dir.File("m");
  std::string err;
  ChunkMap::OpenOptions repair;
  repair.repair = true;
  ChunkMap::OpenInfo a_info, b_info;
  ChunkMap a;
  NASSERT_EQ(a.Open(path, 64, repair, &a_info, &err), 0);
  NEXPECT_TRUE(a_info.exclusive);
  // While the first opener holds it exclusively (repairing), a second one waits, then fails.
  ChunkMap b;
  NEXPECT_EQ(b.Open(path, 64, repair, &b_info, &err), -EBUSY);
  NEXPECT_TRUE(err.find("locked") != std::string::npos);
  NASSERT_EQ(a.Share(), 0);
  NASSERT_EQ(b.Open(path, 64, repair, &b_info, &err), 0);
  NEXPECT_FALSE(b_info.exclusive);
  // Both see each other's bits (one shared mapping of one file).
  a.SetReady(7);
  NEXPECT_TRUE(b.IsReady(7));
  b.SetReady(9);
  NEXPECT_TRUE(a.IsReady(9));
  // A shared opener finds the map "damaged" (another chunk count): error, nothing rebuilt.
  ChunkMap c;
  ChunkMap::OpenInfo c_info;
  NEXPECT_EQ(c.Open(path, 65, repair, &c_info, &err), -EINVAL);
  NEXPECT_TRUE(err.find("in use") != std::string::npos);
  NEXPECT_TRUE(a.IsReady(7));
  // Once everyone closed it, the next opener is exclusive again.
  a.Close();
  b.Close();
  NASSERT_EQ(c.Open(path, 64, repair, &c_info, &err), 0);
  NEXPECT_TRUE(c_info.exclusive);
  NEXPECT_TRUE(c.IsReady(9));
}

NTEST(CacheRobust, DataExtentsOfASparseFile) {
  TempDir dir;
  std::string path = dir.File("d");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  NASSERT_TRUE(fd >= 0);
  NASSERT_EQ(::ftruncate(fd, 8 << 20), 0);
  std::vector<uint8_t> page(65536, 1);
  NASSERT_EQ(::pwrite(fd, page.data(), page.size(), 1 << 20), 65536);
  NASSERT_EQ(::pwrite(fd, page.data(), page.size(), 4 << 20), 65536);
  std::vector<std::pair<uint64_t, uint64_t>> ext;
  NASSERT_EQ(cache::DataExtents(fd, &ext), 0);
  NASSERT_EQ(ext.size(), size_t{2});
  NEXPECT_TRUE(ext[0].first <= (1u << 20) && ext[0].second >= (1u << 20) + 65536);
  NEXPECT_TRUE(ext[0].second < (4u << 20));
  NEXPECT_TRUE(ext[1].first <= (4u << 20) && ext[1].second >= (4u << 20) + 65536);
  ::close(fd);
}

NTEST(CacheRobust, ReadsSpilledChunksAndMissesEvictedOnes) {
  TempDir dir;
  constexpr uint32_t kChunk = 4096;
  std::string data = dir.File("blob.data");
  // Chunk 0 in the cache file, chunk 1 only in the spill.
  std::vector<uint8_t> file(2 * kChunk, 0);
  std::memset(file.data(), 0x11, kChunk);
  WriteBytes(data, file);
  auto map = std::make_shared<ChunkMap>();
  std::string err;
  NASSERT_EQ(map->Open(dir.File("blob.data.chunk_map"), 2, &err), 0);
  map->SetReady(0);
  cache::Spill* spill = map->EnsureSpill(&err);
  NASSERT_TRUE(spill != nullptr);
  std::vector<uint8_t> c1(kChunk, 0x22);
  NASSERT_EQ(::pwrite(spill->fd(), c1.data(), kChunk, kChunk), static_cast<ssize_t>(kChunk));
  readpath::BlobRegistry blobs;
  NASSERT_EQ(blobs.Register(0, data, map, &err), 0);
  auto table = readpath::ExtentTable::FromExtents(
      2 * kChunk, {{0, 0, kChunk, kChunk, 0, 0, 0}, {kChunk, kChunk, kChunk, kChunk, 0, 1, 0}},
      &err);
  NASSERT_TRUE(table != nullptr);
  auto serve = [&](std::vector<readpath::ChunkRef>* missing, std::vector<uint8_t>* out) {
    out->assign(2 * kChunk, 0xAA);
    transport::IoSlice sl{out->data(), out->size()};
    transport::SliceWriter w(std::span<const transport::IoSlice>(&sl, 1));
    missing->clear();
    return readpath::ServeRead(*table, blobs, 0, 2 * kChunk, w, 0, missing, nullptr);
  };
  std::vector<readpath::ChunkRef> missing;
  std::vector<uint8_t> out;
  NEXPECT_EQ(static_cast<int>(serve(&missing, &out).status),
             static_cast<int>(readpath::ReadStatus::kMissing));
  NEXPECT_TRUE(spill->SetReady(1));
  NEXPECT_TRUE(blobs.Get(0)->ChunkReady(1));
  auto res = serve(&missing, &out);
  NASSERT_EQ(static_cast<int>(res.status), static_cast<int>(readpath::ReadStatus::kDone));
  NEXPECT_EQ(out[0], 0x11);
  NEXPECT_EQ(out[kChunk - 1], 0x11);
  NEXPECT_EQ(out[kChunk], 0x22);
  NEXPECT_EQ(out[2 * kChunk - 1], 0x22);
  spill->Evict(1, kChunk, kChunk);
  NEXPECT_FALSE(spill->IsReady(1));
  NEXPECT_EQ(static_cast<int>(serve(&missing, &out).status),
             static_cast<int>(readpath::ReadStatus::kMissing));
  NASSERT_EQ(missing.size(), size_t{1});
  NEXPECT_EQ(missing[0].index, 1u);
}

}  // namespace
}  // namespace nydus::testing
