#include "common/thread_sched.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

namespace nydus {
namespace {

// struct sched_attr as the kernel defines it (SCHED_ATTR_SIZE_VER0, 48 bytes). Spelled out here:
// glibc declares it only from 2.41, and <linux/sched/types.h> clashes with glibc that does.
struct KernelSchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};
static_assert(sizeof(KernelSchedAttr) == 48);

constexpr uint64_t kResetOnFork = 0x01;  // SCHED_FLAG_RESET_ON_FORK

int GetAttr(pid_t tid, KernelSchedAttr* attr) {
  *attr = KernelSchedAttr{};
  if (syscall(SYS_sched_getattr, tid, attr, sizeof(*attr), 0) != 0) return -errno;
  return 0;
}

// The calling thread's: whether it is under the bulk policy, and when it last yielded
// (CLOCK_MONOTONIC ns).
thread_local bool t_bulk = false;
thread_local uint64_t t_last_yield_ns = 0;

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

int SetBulkThreadSched() {
  KernelSchedAttr attr;
  if (int rc = GetAttr(0, &attr); rc != 0) return rc;
  // Only the fair classes have slices; a thread someone put under another policy keeps it (and
  // does not yield: sched_yield means something else under a real-time policy).
  if (attr.sched_policy != SCHED_OTHER && attr.sched_policy != SCHED_BATCH) return 0;
  // Yielding helps with or without custom slices (a kernel that refuses them still picks again).
  t_bulk = true;
  attr.size = sizeof(attr);
  // Of the flags sched_getattr reports only reset-on-fork is the thread's own; keep it.
  attr.sched_flags &= kResetOnFork;
  attr.sched_runtime = kBulkSliceNs;
  if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) return -errno;
  return 0;
}

bool BulkYieldPoint() {
  if (!t_bulk) return false;
  const uint64_t now = MonotonicNs();
  if (now - t_last_yield_ns < kBulkYieldNs) return false;
  sched_yield();
  // From after the yield: time spent waiting for the CPU is not the thread's own computing.
  t_last_yield_ns = MonotonicNs();
  return true;
}

int GetThreadSched(pid_t tid, ThreadSched* out) {
  KernelSchedAttr attr;
  if (int rc = GetAttr(tid, &attr); rc != 0) return rc;
  out->policy = static_cast<int>(attr.sched_policy);
  out->nice = attr.sched_nice;
  out->slice_ns = attr.sched_runtime;
  return 0;
}

}  // namespace nydus
