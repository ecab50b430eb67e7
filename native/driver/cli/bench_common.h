// Pieces shared by the driver's benchmark loops (bench.cc, bench_cycle.cc): CPU accounting of
// the backend (from /proc, children included) and of the driver itself (getrusage), latency
// percentiles, and the JSON fields every benchmark reports the same way.
#pragma once

#include <cstdint>
#include <vector>

#include "driver/cli/json.h"

namespace nydus::driver {

// utime + stime of this process in seconds.
double SelfCpuSeconds();

// The p-th percentile (0..1) of `v` (reorders it); 0 for an empty vector.
uint64_t Percentile(std::vector<uint64_t>& v, double p);

// Busy CPU time of the whole machine (all CPUs, /proc/stat) in seconds; < 0 if unreadable.
double MachineBusySeconds();

// CPU of the server, of the driver and of the whole machine over one measured interval. What
// the machine spent beyond server and driver is other work sharing the CPUs: a number that says
// how much to trust a run on a shared machine.
struct CpuWindow {
  int server_pid = 0;
  double server0 = -1;
  double self0 = 0;
  double machine0 = -1;
  double server_s = -1;  // < 0: the server's CPU was not readable
  double self_s = 0;
  double machine_s = -1;

  void Start(int pid);
  void Stop();
};

// "latency_us": {avg, p50, p99} of `latencies_ns` (reordered).
void LatencyJson(Json& j, std::vector<uint64_t>& latencies_ns);
// server_pid, server_cpu_s, server_cpu_us_per_op (and per request when `requests` differs from
// `ops`), driver_cpu_s, driver_cpu_us_per_op, machine_cpu_s and other_cpu_s (machine minus
// server minus driver; clock-tick granularity can make it slightly negative).
void CpuJson(Json& j, const CpuWindow& w, uint64_t ops, uint64_t requests);

}  // namespace nydus::driver
