// The bulk-thread policy (common/thread_sched.h): a fill thread asks for the long slice and keeps
// its policy and nice; nothing else in the process changes.
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "cache/fill_pool.h"
#include "common/thread_sched.h"
#include "testing.h"

using nydus::GetThreadSched;
using nydus::kBulkSliceNs;
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
