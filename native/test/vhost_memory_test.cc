// Guest memory table: mapping memfd regions with offsets, refusing bad ones, translating guest
// physical and frontend virtual addresses with overflow checks and region splits.
#include <errno.h>
#include <sys/mman.h>

#include <cstring>

#include "testing.h"
#include "vhost/guest_memory.h"
#include "vhost_test_util.h"

using namespace nydus::vhost;
using nydus::UniqueFd;
using nydus::transport::IoSlice;

namespace {

// Two regions of one 1 MiB memfd, adjacent in guest-physical space but not in the file:
// gpa [0x1000, 0x3000) -> file 0x10000, gpa [0x3000, 0x5000) -> file 0x40000.
struct TwoRegions {
  TwoRegions() : fd(testing::MakeMemfd(1 << 20)) {
    std::string err;
    a = MappedRegion::Map(fd.get(), {0x1000, 0x2000, 0x7000000000, 0x10000}, &err);
    b = MappedRegion::Map(fd.get(), {0x3000, 0x2000, 0x7100000000, 0x40000}, &err);
    mem = GuestMemory({b, a});  // any order
  }
  UniqueFd fd;
  std::shared_ptr<const MappedRegion> a, b;
  GuestMemory mem;
};

}  // namespace

NTEST(VhostMemory, MapsWithOffset) {
  TwoRegions t;
  NASSERT_TRUE(t.a != nullptr && t.b != nullptr);
  // The same bytes through our mapping and through a direct pread of the file.
  uint8_t* p = t.mem.GpaToHost(0x1004, 4);
  NASSERT_TRUE(p != nullptr);
  memcpy(p, "wxyz", 4);
  char buf[4];
  NASSERT_EQ(::pread(t.fd.get(), buf, 4, 0x10004), 4);
  NEXPECT_EQ(memcmp(buf, "wxyz", 4), 0);
  NEXPECT_TRUE(t.mem.UvaToHost(0x7000000004, 4) == p);
}

NTEST(VhostMemory, SplitsBuffersAcrossAdjacentRegions) {
  TwoRegions t;
  IoSlice out[4];
  size_t n = 0;
  NASSERT_EQ(t.mem.TranslateGpa(0x2ff0, 0x20, out, 4, &n), 0);
  NASSERT_EQ(n, size_t{2});
  NEXPECT_EQ(out[0].len, size_t{0x10});
  NEXPECT_EQ(out[1].len, size_t{0x10});
  NEXPECT_TRUE(out[1].base == t.b->host());
  NEXPECT_TRUE(t.mem.GpaToHost(0x2ff0, 0x20) == nullptr);  // not contiguous
}

NTEST(VhostMemory, RefusesUnmappedAndOverflowingRanges) {
  TwoRegions t;
  IoSlice out[4];
  size_t n = 0;
  NEXPECT_EQ(t.mem.TranslateGpa(0x0, 0x10, out, 4, &n), -EFAULT);        // below
  NEXPECT_EQ(t.mem.TranslateGpa(0x4ff0, 0x20, out, 4, &n), -EFAULT);     // runs off the end
  NEXPECT_EQ(t.mem.TranslateGpa(~0ull - 4, 0x10, out, 4, &n), -EFAULT);  // wraps
  NEXPECT_EQ(t.mem.TranslateGpa(0x2ff0, 0x20, out, 1, &n), -E2BIG);      // too many pieces
  NEXPECT_TRUE(t.mem.GpaToHost(0x4fff, 2) == nullptr);
  NEXPECT_TRUE(t.mem.UvaToHost(0x7000001ff0, 0x20) == nullptr);
  NEXPECT_TRUE(t.mem.UvaToHost(~0ull, 1) == nullptr);
}

NTEST(VhostMemory, RefusesRegionsPastEndOfFileOrInvalid) {
  UniqueFd fd = testing::MakeMemfd(0x10000);
  std::string err;
  NEXPECT_TRUE(MappedRegion::Map(fd.get(), {0, 0x10000, 0x1000, 0}, &err) != nullptr);
  NEXPECT_TRUE(MappedRegion::Map(fd.get(), {0, 0x10000, 0x1000, 0x1000}, &err) == nullptr);
  NEXPECT_TRUE(err.find("regular file") != std::string::npos);
  NEXPECT_TRUE(MappedRegion::Map(fd.get(), {0, 0, 0x1000, 0}, &err) == nullptr);
  NEXPECT_TRUE(MappedRegion::Map(fd.get(), {~0ull - 10, 0x100, 0, 0}, &err) == nullptr);
  UniqueFd efd = testing::MakeEventFd();
  NEXPECT_TRUE(MappedRegion::Map(efd.get(), {0, 0x1000, 0, 0}, &err) == nullptr);
}

NTEST(VhostMemory, OverlapIsRefused) {
  TwoRegions t;
  std::string err;
  NEXPECT_FALSE(t.mem.CanAdd({0x4000, 0x2000, 0, 0}, &err));
  NEXPECT_FALSE(t.mem.CanAdd({0x0, 0x1001, 0, 0}, &err));
  NEXPECT_TRUE(t.mem.CanAdd({0x5000, 0x1000, 0, 0}, &err));
  NEXPECT_TRUE(t.mem.CanAdd({0x0, 0x1000, 0, 0}, &err));
}

NTEST(VhostMemory, SnapshotsKeepMappingsAlive) {
  MemoryTable table;
  std::shared_ptr<const GuestMemory> snapshot;
  {
    TwoRegions t;
    table.Replace(std::make_shared<const GuestMemory>(t.mem));
    snapshot = table.Current();
    table.Replace(std::make_shared<const GuestMemory>());
  }
  // The region objects are gone from the table but the snapshot still maps them.
  uint8_t* p = snapshot->GpaToHost(0x1000, 0x2000);
  NASSERT_TRUE(p != nullptr);
  memset(p, 0xab, 0x2000);
  NEXPECT_EQ(table.Current()->num_regions(), size_t{0});
}
