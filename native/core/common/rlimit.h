// RLIMIT_NOFILE access for `nydusd --rlimit-nofile` (Node has no setrlimit).
//
// Plain wrappers around getrlimit/setrlimit so the policy (how high to go, what to do when the
// hard limit cannot be raised) stays in TypeScript where the CLI options live.
#pragma once

#include <cstdint>

namespace nydus {

struct NofileLimit {
  uint64_t soft = 0;
  uint64_t hard = 0;  // RLIM_INFINITY is reported as UINT64_MAX
};

// Returns 0 or -errno.
int GetNofileLimit(NofileLimit* out);
// Sets both limits. Returns 0 or -errno (EPERM when raising the hard limit needs privileges,
// EINVAL when soft > hard).
int SetNofileLimit(const NofileLimit& limit);

}  // namespace nydus
