#include "common/rlimit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstdint>

namespace nydus {
namespace {

uint64_t FromRlim(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v); }
rlim_t ToRlim(uint64_t v) { return v == UINT64_MAX ? RLIM_INFINITY : static_cast<rlim_t>(v); }

}  // namespace

int GetNofileLimit(NofileLimit* out) {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -errno;
  out->soft = FromRlim(rl.rlim_cur);
  out->hard = FromRlim(rl.rlim_max);
  return 0;
}

int SetNofileLimit(const NofileLimit& limit) {
  if (limit.soft > limit.hard) return -EINVAL;
  struct rlimit rl {};
  rl.rlim_cur = ToRlim(limit.soft);
  rl.rlim_max = ToRlim(limit.hard);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -errno;
  return 0;
}

}  // namespace nydus
