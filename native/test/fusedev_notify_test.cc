// FUSE notification messages (fusedev/notify.h): the exact bytes the kernel parses, and the
// write of one message to an fd (a pipe stands in for /dev/fuse).
#include <linux/fuse.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fuse_testing.h"
#include "fusedev/notify.h"
#include "testing.h"

namespace nydus::testing {
namespace {

NTEST(FuseNotify, InvalEntryLayout) {
  auto m = fusedev::InvalEntryMessage(0x1000000000001ull, "lowerdir");
  NASSERT_EQ(m.size(), 16u + 16u + 9u);
  NEXPECT_EQ(U32At(m, 0), 41u);                                            // len
  NEXPECT_EQ(I32At(m, 4), static_cast<int32_t>(FUSE_NOTIFY_INVAL_ENTRY));  // error = code
  NEXPECT_EQ(U64At(m, 8), 0u);                                             // unique
  NEXPECT_EQ(U64At(m, 16), 0x1000000000001ull);                            // parent
  NEXPECT_EQ(U32At(m, 24), 8u);                                            // namelen
  NEXPECT_EQ(U32At(m, 28), 0u);                                            // flags
  NEXPECT_EQ(std::memcmp(m.data() + 32, "lowerdir", 8), 0);
  NEXPECT_EQ(m[40], 0);  // the kernel wants the NUL inside the message
  NEXPECT_TRUE(fusedev::InvalEntryMessage(1, "").empty());
  NEXPECT_TRUE(fusedev::InvalEntryMessage(1, std::string(256, 'x')).empty());
  NEXPECT_EQ(fusedev::InvalEntryMessage(1, std::string(255, 'x')).size(), 16u + 16u + 256u);
}

NTEST(FuseNotify, InvalInodeLayoutAndWrite) {
  auto m = fusedev::InvalInodeMessage(1, -1, 0);
  NASSERT_EQ(m.size(), 40u);
  NEXPECT_EQ(U32At(m, 0), 40u);
  NEXPECT_EQ(I32At(m, 4), static_cast<int32_t>(FUSE_NOTIFY_INVAL_INODE));
  NEXPECT_EQ(U64At(m, 16), 1u);
  NEXPECT_EQ(static_cast<int64_t>(U64At(m, 24)), -1);
  NEXPECT_EQ(U64At(m, 32), 0u);
  int p[2];
  NASSERT_EQ(::pipe(p), 0);
  NEXPECT_EQ(fusedev::WriteNotify(p[1], m), 0);
  std::vector<uint8_t> got(64);
  NEXPECT_EQ(::read(p[0], got.data(), got.size()), 40);
  got.resize(40);
  NEXPECT_TRUE(got == m);
  NEXPECT_EQ(fusedev::WriteNotify(p[1], {}), -EINVAL);
  ::close(p[0]);
  ::close(p[1]);
  NEXPECT_EQ(fusedev::WriteNotify(-1, m), -EBADF);
}

}  // namespace
}  // namespace nydus::testing
