#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "cache/chunk_map.h"
#include "testing.h"

using nydus::cache::ChunkMap;

namespace {
std::vector<uint8_t> ReadAll(const std::string& path) {
  std::vector<uint8_t> data;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return data;
  uint8_t buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) data.insert(data.end(), buf, buf + n);
  ::close(fd);
  return data;
}
}  // namespace

NTEST(ChunkMap, UpstreamLayoutMsbFirst) {
  nydus::testing::TempDir dir;
  std::string path = dir.File("b.blob.data.chunk_map");
  {
    ChunkMap m;
    std::string err;
    NASSERT_EQ(m.Open(path, 10, &err), 0);
    NEXPECT_TRUE(m.SetReady(0));
    NEXPECT_TRUE(m.SetReady(9));
    NEXPECT_FALSE(m.SetReady(9));
    NEXPECT_FALSE(m.SetReady(10));
    NEXPECT_TRUE(m.IsReady(0));
    NEXPECT_FALSE(m.IsReady(1));
    NEXPECT_EQ(m.ReadyCount(), 2u);
  }
  auto bytes = ReadAll(path);
  NASSERT_EQ(bytes.size(), size_t{4096 + 2});
  uint32_t magic, version, magic2, all_ready;
  std::memcpy(&magic, &bytes[0], 4);
  std::memcpy(&version, &bytes[4], 4);
  std::memcpy(&magic2, &bytes[8], 4);
  std::memcpy(&all_ready, &bytes[12], 4);
  NEXPECT_EQ(magic, 0x424D4150u);
  NEXPECT_EQ(version, 1u);
  NEXPECT_EQ(magic2, 0x434D4150u);
  NEXPECT_EQ(all_ready, 0u);
  NEXPECT_EQ(bytes[4096], 0x80);  // chunk 0 -> MSB of byte 0
  NEXPECT_EQ(bytes[4097], 0x40);  // chunk 9 -> second bit of byte 1
}

NTEST(ChunkMap, PersistsAndMarksAllReady) {
  nydus::testing::TempDir dir;
  std::string path = dir.File("m");
  std::string err;
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 3, &err), 0);
    m.SetReady(0);
    m.SetReady(1);
  }
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(path, 3, &err), 0);
    NEXPECT_TRUE(m.IsReady(1));
    NEXPECT_FALSE(m.AllReady());
    NEXPECT_TRUE(m.RangeReady(0, 2));
    NEXPECT_FALSE(m.RangeReady(0, 3));
    m.SetReady(2);
    NEXPECT_TRUE(m.AllReady());
  }
  auto bytes = ReadAll(path);
  uint32_t all_ready;
  std::memcpy(&all_ready, &bytes[12], 4);
  NEXPECT_EQ(all_ready, 0x4D4D4150u);
}

NTEST(ChunkMap, RejectsForeignFiles) {
  nydus::testing::TempDir dir;
  std::string err;
  {
    ChunkMap m;
    NASSERT_EQ(m.Open(dir.File("a"), 16, &err), 0);
  }
  ChunkMap m;
  NEXPECT_EQ(m.Open(dir.File("a"), 17, &err), -EINVAL);  // 16 and 17 chunks differ in size
  NEXPECT_TRUE(err.find("expected") != std::string::npos);
  std::string junk = dir.File("junk");
  int fd = ::open(junk.c_str(), O_CREAT | O_WRONLY, 0644);
  std::vector<uint8_t> garbage(ChunkMap::FileSize(16), 0x5a);
  NASSERT_EQ(::write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
  ::close(fd);
  NEXPECT_EQ(m.Open(junk, 16, &err), -EINVAL);
  // An all-zero file of the right size is a half-created map and gets initialised.
  std::string zero = dir.File("zero");
  fd = ::open(zero.c_str(), O_CREAT | O_WRONLY, 0644);
  NASSERT_EQ(::ftruncate(fd, static_cast<off_t>(ChunkMap::FileSize(16))), 0);
  ::close(fd);
  NEXPECT_EQ(m.Open(zero, 16, &err), 0);
  NEXPECT_EQ(m.Open(dir.File("z2"), 0, &err), -EINVAL);
}
