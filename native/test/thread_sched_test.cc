// The bulk-thread policy (common/thread_sched.h): a fill thread asks for the long slice and keeps
// its policy and nice; nothing else in the process changes; its cache-file reads and writes move
// at most one step per system call.
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/exact_io.h"
#include "cache/fill_pool.h"
#include "common/thread_sched.h"
#include "testing.h"

using nydus::BulkYieldPoint;
using nydus::GetThreadSched;
using nydus::kBulkIoStep;
using nydus::kBulkSliceNs;
using nydus::kBulkYieldNs;
using nydus::SetBulkThreadSched;
using nydus::ThreadSched;

namespace {

// Whether this kernel reports slices (sched_attr.sched_runtime for fair threads, Linux 6.12+).
bool KernelHasSlices() {
  ThreadSched self;
  return GetThreadSched(0, &self) == 0 && self.slice_ns != 0;
}

// Runs `body` on a new thread and returns what it reported.
template <typename F>
ThreadSched OnThread(F body) {
  ThreadSched out;
  std::thread([&] { out = body(); }).join();
  return out;
}

// A new thread put under `policy`, then under the bulk policy: what it ends up with.
ThreadSched UnderPolicy(int policy) {
  return OnThread([policy] {
    sched_param p{};
    NEXPECT_EQ(sched_setscheduler(0, policy, &p), 0);
    NEXPECT_EQ(SetBulkThreadSched(), 0);
    ThreadSched s;
    GetThreadSched(0, &s);
    return s;
  });
}

}  // namespace

NTEST(ThreadSched, BulkThreadAsksForTheLongSliceAndKeepsItsPolicy) {
  ThreadSched before;
  NASSERT_EQ(GetThreadSched(0, &before), 0);
  int rc = -1;
  ThreadSched got = OnThread([&] {
    rc = SetBulkThreadSched();
    ThreadSched s;
    GetThreadSched(0, &s);
    return s;
  });
  NEXPECT_EQ(rc, 0);
  NEXPECT_EQ(got.policy, SCHED_OTHER);
  NEXPECT_EQ(got.nice, before.nice);
  if (KernelHasSlices()) NEXPECT_EQ(got.slice_ns, kBulkSliceNs);
  // Per thread: the caller (here the test's main thread, in the daemon the event loop) is
  // untouched.
  ThreadSched after;
  NASSERT_EQ(GetThreadSched(0, &after), 0);
  NEXPECT_EQ(after.policy, before.policy);
  NEXPECT_EQ(after.nice, before.nice);
  NEXPECT_EQ(after.slice_ns, before.slice_ns);
  if (KernelHasSlices()) NEXPECT_NE(after.slice_ns, kBulkSliceNs);
}

NTEST(ThreadSched, NiceAndBatchAreKept) {
  // A thread the operator niced (or the process was started under `nice`/`chrt -b`) stays so:
  // setting the slice must not write a default nice or policy back.
  ThreadSched got = OnThread([] {
    NEXPECT_EQ(
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), getpriority(PRIO_PROCESS, 0) + 3),
        0);
    NEXPECT_EQ(SetBulkThreadSched(), 0);
    ThreadSched s;
    GetThreadSched(0, &s);
    return s;
  });
  NEXPECT_EQ(got.nice, getpriority(PRIO_PROCESS, 0) + 3);
  if (KernelHasSlices()) NEXPECT_EQ(got.slice_ns, kBulkSliceNs);
  got = UnderPolicy(SCHED_BATCH);
  NEXPECT_EQ(got.policy, SCHED_BATCH);
  if (KernelHasSlices()) NEXPECT_EQ(got.slice_ns, kBulkSliceNs);
}

NTEST(ThreadSched, OnlyBulkThreadsYieldAndAtMostOncePerInterval) {
  // Threads that are not bulk (the JS thread, FUSE workers: they share exact_io.h with the fill
  // threads) never yield at a step boundary.
  int plain = 0;
  std::thread([&] {
    for (int i = 0; i < 1000; ++i) plain += BulkYieldPoint() ? 1 : 0;
  }).join();
  NEXPECT_EQ(plain, 0);
  // A bulk thread yields at its first boundary, again once the interval passed since, and never
  // twice within one interval.
  bool first = false, later = false;
  uint64_t count = 0, ns = 0;
  std::thread([&] {
    NEXPECT_EQ(SetBulkThreadSched(), 0);
    first = BulkYieldPoint();
    std::this_thread::sleep_for(std::chrono::nanoseconds(kBulkYieldNs));
    later = BulkYieldPoint();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 200000; ++i) count += BulkYieldPoint() ? 1 : 0;
    ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }).join();
  NEXPECT_TRUE(first);
  NEXPECT_TRUE(later);
  NEXPECT_LE(count, ns / kBulkYieldNs + 1);
  // Under a policy the bulk policy leaves alone, no yields either.
  int idle = 0;
  std::thread([&] {
    sched_param p{};
    NEXPECT_EQ(sched_setscheduler(0, SCHED_IDLE, &p), 0);
    NEXPECT_EQ(SetBulkThreadSched(), 0);
    for (int i = 0; i < 1000; ++i) idle += BulkYieldPoint() ? 1 : 0;
  }).join();
  NEXPECT_EQ(idle, 0);
}

NTEST(ThreadSched, IdleThreadsAreLeftAlone) {
  ThreadSched got = UnderPolicy(SCHED_IDLE);
  NEXPECT_EQ(got.policy, SCHED_IDLE);
  NEXPECT_NE(got.slice_ns, kBulkSliceNs);
}

NTEST(ThreadSched, FillPoolThreadsRunUnderTheBulkPolicy) {
  // The pool cache fills run on (fill_pool.cc applies the policy as each thread starts).
  nydus::cache::FillPool pool(2);
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  ThreadSched seen[2];
  pid_t tids[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    pool.Submit([&, i] {
      ThreadSched s;
      GetThreadSched(0, &s);
      std::lock_guard lock(mu);
      seen[i] = s;
      tids[i] = gettid();
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done == 2; });
  ThreadSched self;
  NASSERT_EQ(GetThreadSched(0, &self), 0);
  for (int i = 0; i < 2; ++i) {
    NEXPECT_NE(tids[i], gettid());
    NEXPECT_EQ(seen[i].policy, self.policy);
    NEXPECT_EQ(seen[i].nice, self.nice);
    if (KernelHasSlices()) NEXPECT_EQ(seen[i].slice_ns, kBulkSliceNs);
  }
}

namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr uint32_t kAuditArch = 0;
#endif

// Makes the kernel refuse (EFBIG) any pread64 or pwrite64 of more than kBulkIoStep bytes from
// the calling thread, for the rest of its life (seccomp filters are per thread without TSYNC).
int RefuseBigTransfers() {
  constexpr uint32_t kNr = offsetof(seccomp_data, nr);
  constexpr uint32_t kArch = offsetof(seccomp_data, arch);
  // The count argument (the third) as two 32-bit words; little-endian on both architectures.
  constexpr uint32_t kCountLo = offsetof(seccomp_data, args) + 2 * sizeof(uint64_t);
  constexpr uint32_t kCountHi = kCountLo + sizeof(uint32_t);
  sock_filter prog[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArch),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 0, 8),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pread64, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pwrite64, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kCountHi),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kCountLo),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, static_cast<uint32_t>(kBulkIoStep), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EFBIG),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog fprog{static_cast<unsigned short>(sizeof(prog) / sizeof(prog[0])), prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) return -errno;
  return 0;
}

}  // namespace

NTEST(ThreadSched, CacheFileIoMovesAtMostOneStepPerCall) {
  // A 16 MiB pwrite to the page cache ran for tens of ms without giving way to the woken loop on
  // a kernel that does not preempt in kernel mode; in steps it returns to user space in between.
  // The kernel itself refuses a bigger transfer here, so one unstepped call fails the test.
  if (kAuditArch == 0) return;
  nydus::testing::TempDir dir;
  const std::string path = dir.File("data");
  const size_t len = 3 * kBulkIoStep + 4097;  // more than one step, not a multiple of it
  std::vector<uint8_t> out(len);
  for (size_t i = 0; i < len; ++i) out[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  std::vector<uint8_t> in(len);
  int filter = -1, wrote = -1, read = -1, big = 0;
  std::thread([&] {
    filter = RefuseBigTransfers();
    if (filter != 0) return;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    wrote = nydus::cache::PwriteAll(fd, out.data(), len, 4096);
    read = nydus::cache::PreadExact(fd, in.data(), len, 4096);
    // The filter holds: one call of more than a step is refused.
    big = ::pread(fd, in.data(), kBulkIoStep + 1, 0) < 0 ? -errno : 0;
    ::close(fd);
  }).join();
  NASSERT_EQ(filter, 0);
  NEXPECT_EQ(big, -EFBIG);
  NEXPECT_EQ(wrote, 0);
  NEXPECT_EQ(read, 0);
  NEXPECT_TRUE(in == out);
}
