#include "driver/cli/bench_common.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "driver/cli/driver.h"

namespace nydus::driver {

double SelfCpuSeconds() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t Percentile(std::vector<uint64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

double MachineBusySeconds() {
  std::ifstream f("/proc/stat");
  std::string line;
  if (!std::getline(f, line) || line.rfind("cpu ", 0) != 0) return -1;
  // cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
  std::istringstream in(line.substr(4));
  double v[8] = {};
  for (double& x : v) {
    if (!(in >> x)) return -1;
  }
  const double busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return busy / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

void CpuWindow::Start(int pid) {
  server_pid = pid;
  server0 = pid > 0 ? ProcessCpuSeconds(pid) : -1;
  self0 = SelfCpuSeconds();
  machine0 = MachineBusySeconds();
}

void CpuWindow::Stop() {
  const double server1 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  self_s = SelfCpuSeconds() - self0;
  server_s = server0 >= 0 && server1 >= 0 ? server1 - server0 : -1;
  const double machine1 = MachineBusySeconds();
  machine_s = machine0 >= 0 && machine1 >= 0 ? machine1 - machine0 : -1;
}

void LatencyJson(Json& j, std::vector<uint64_t>& lat) {
  double avg = 0;
  for (uint64_t l : lat) avg += double(l);
  avg = lat.empty() ? 0 : avg / double(lat.size()) / 1000.0;
  j.Key("latency_us")
      .BeginObject()
      .Field("avg", avg)
      .Field("p50", double(Percentile(lat, 0.5)) / 1000.0)
      .Field("p99", double(Percentile(lat, 0.99)) / 1000.0)
      .EndObject();
}

void CpuJson(Json& j, const CpuWindow& w, uint64_t ops, uint64_t requests) {
  j.Field("server_pid", w.server_pid);
  if (w.server_s >= 0) {
    j.Field("server_cpu_s", w.server_s)
        .Field("server_cpu_us_per_op", ops > 0 ? w.server_s * 1e6 / double(ops) : 0.0);
    if (requests != ops) {
      j.Field("server_cpu_us_per_request",
              requests > 0 ? w.server_s * 1e6 / double(requests) : 0.0);
    }
  }
  j.Field("driver_cpu_s", w.self_s)
      .Field("driver_cpu_us_per_op", ops > 0 ? w.self_s * 1e6 / double(ops) : 0.0);
  if (w.machine_s >= 0) {
    j.Field("machine_cpu_s", w.machine_s);
    if (w.server_s >= 0) j.Field("other_cpu_s", w.machine_s - w.server_s - w.self_s);
  }
}

}  // namespace nydus::driver
