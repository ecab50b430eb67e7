// Scheduling of the threads that do bulk data work (cache fills: decode, digest, cache writes).
//
// The event loop serves the metadata of every guest and sleeps most of the time; a fill thread
// runs flat out for as long as there is data. At equal standing the scheduler lets a running fill
// thread finish its slice (and, between timer ticks, more) before a woken loop gets the CPU: on a
// 2-core machine with both cores filling, the loop's worst delay during a cold read was 10-15 ms.
//
// The bulk policy keeps the fill threads' share of the CPU and changes only who goes first: they
// ask the scheduler for a long slice (sched_attr.sched_runtime on SCHED_OTHER, EEVDF kernels from
// Linux 6.12). A thread waking with a shorter slice, as every ordinary thread has, preempts them
// at once instead of waiting for them to use theirs up. Weight is unchanged, so a fill thread is
// never starved by other load, and no lock it holds is stranded behind a low priority (a lower
// nice, SCHED_BATCH or SCHED_IDLE would do both: a guest's READ waits on these threads).
//
// The slice decides only at the moment the loop wakes: EEVDF then preempts the running fill thread
// if the loop is its pick. When it is not (its deadline falls after a queued fill thread's, say one
// with little of its slice left, or the loop is not yet eligible after its own last run), nothing
// looks again until the next scheduler tick (4 ms at HZ=250), and the loop waits that long behind a
// fill thread hashing in user mode: traced, most of the validated cold read's loop delays over
// 2 ms were such 1-4.7 ms waits. So bulk threads also offer the CPU at the boundaries of their own
// steps (BulkYieldPoint): a yield makes the scheduler pick again, and a runnable loop goes first.
//
// Kernels without custom slices ignore the field or refuse the call: either way the thread runs
// as before, so failures are reported but callers carry on.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace nydus {

// The slice bulk threads ask for: longer than any default slice (0.7-0.75 ms times 1 + log2 of
// up to 8 CPUs: at most 3 ms), so every ordinary thread preempts them on waking; no longer than
// that, because a woken fill thread's own deadline is its slice away and, on a busy machine, it
// then waits behind threads with nearer ones (a longer slice would cost fill latency under load).
// One tick at HZ=250.
inline constexpr uint64_t kBulkSliceNs = 4'000'000;

// The most a bulk thread moves in one read or write system call (cache/exact_io.h). On a kernel
// that does not preempt in kernel mode (preempt=none, as here) the woken loop gets the CPU only
// where the running thread reschedules: on its way back to user space, or at a rare point inside
// the call. A fill's 16 MiB pwrite to the page cache runs for tens of ms; woken behind one, the
// loop waited 2.8 ms at the median and up to 22 ms (a slice and more). A 256 KiB step is about
// 0.2 ms in the kernel, and 64 calls per 16 MiB cost nothing measurable next to the copy.
inline constexpr size_t kBulkIoStep = 256 << 10;

// How long a bulk thread computes at most before its next step boundary offers the CPU
// (BulkYieldPoint): well under a tick, so a loop queued behind it waits about this long plus one
// step (a chunk's decode and digest), not until the tick. Yielding with nobody waiting costs one
// system call (about a microsecond), so offering it every half millisecond costs nothing
// measurable; between steps (256 KiB of I/O) it is not offered more often than this.
inline constexpr uint64_t kBulkYieldNs = 500'000;

struct ThreadSched {
  int policy = 0;  // SCHED_OTHER, SCHED_BATCH, ...
  int nice = 0;
  uint64_t slice_ns = 0;  // the thread's slice as the kernel reports it; 0 on kernels without
};

// Puts the calling thread under the bulk policy (above). Returns 0 or -errno.
int SetBulkThreadSched();

// A step boundary of a bulk thread's work (between two I/O steps, after a chunk's decode): when
// the calling thread is under the bulk policy and kBulkYieldNs passed since its last yield, it
// yields the CPU (sched_yield: on EEVDF its deadline moves one slice on and the scheduler picks
// again; its weight, so its share, is unchanged). True when it yielded. No-op on other threads.
bool BulkYieldPoint();

// The scheduling attributes of thread `tid` (0: the calling thread). Returns 0 or -errno.
int GetThreadSched(pid_t tid, ThreadSched* out);

}  // namespace nydus
