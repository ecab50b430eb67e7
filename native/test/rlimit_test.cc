#include <cerrno>
#include <cstdint>

#include "common/rlimit.h"
#include "testing.h"

using nydus::GetNofileLimit;
using nydus::NofileLimit;
using nydus::SetNofileLimit;

NTEST(Rlimit, LowerSoftLimitAndRestore) {
  NofileLimit orig;
  NASSERT_EQ(GetNofileLimit(&orig), 0);
  NASSERT_TRUE(orig.soft > 64);
  // Lowering the soft limit never needs privileges.
  NofileLimit lowered{64, orig.hard};
  NASSERT_EQ(SetNofileLimit(lowered), 0);
  NofileLimit now;
  NASSERT_EQ(GetNofileLimit(&now), 0);
  NEXPECT_EQ(now.soft, uint64_t{64});
  NEXPECT_EQ(now.hard, orig.hard);
  NEXPECT_EQ(SetNofileLimit(orig), 0);
  NASSERT_EQ(GetNofileLimit(&now), 0);
  NEXPECT_EQ(now.soft, orig.soft);
}

NTEST(Rlimit, SoftAboveHardIsRejected) {
  NofileLimit orig;
  NASSERT_EQ(GetNofileLimit(&orig), 0);
  if (orig.hard == UINT64_MAX) return;
  NofileLimit bad{orig.hard + 1, orig.hard};
  NEXPECT_EQ(SetNofileLimit(bad), -EINVAL);
}
