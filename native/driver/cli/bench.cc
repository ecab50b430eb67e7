// bench read / bench meta: keep `qd` requests in flight for `seconds` (or, with --passes N, for
// N passes over the file), like a guest with that many readers, and report throughput, latency
// and CPU per request of the backend process (from /proc/<pid>/stat) and of this driver
// (getrusage). `bench lookup-getattr|smallfile|readdir` are in bench_cycle.cc.
#include <errno.h>
#include <string.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "driver/cli/bench_common.h"
#include "driver/cli/driver.h"

namespace nydus::driver {
namespace {

struct Result {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t errors = 0;
  std::vector<uint64_t> latencies_ns;
  double seconds = 0;
};

// The loop shared by both benchmarks: `make(i)` fills a RequestSpec for the i-th request,
// `check(c)` validates a completion and returns the payload bytes it delivered (or -1). At most
// `max_ops` requests are issued (0: no limit).
template <typename Make, typename Check>
int RunLoop(Connection* c, uint32_t qd, double seconds, uint64_t max_ops, Make make, Check check,
            Result* r, std::string* error) {
  const uint64_t start = MonoNs();
  const uint64_t end = start + static_cast<uint64_t>(seconds * 1e9);
  uint64_t issued = 0;
  std::vector<Completion> done;
  auto fill = [&]() {
    bool any = false;
    while (c->fuse->in_flight() < qd && MonoNs() < end && (max_ops == 0 || issued < max_ops)) {
      RequestSpec spec = make(issued);
      int slot = c->fuse->Submit(spec, false);
      if (slot < 0) {
        *error = "submit: " + std::string(strerror(-slot));
        return false;
      }
      ++issued;
      any = true;
    }
    if (any) c->fuse->Kick(1);  // one kick per batch, like a guest's virtqueue_kick
    return true;
  };
  if (!fill()) return -EIO;
  r->latencies_ns.reserve(1 << 20);
  while (c->fuse->in_flight() > 0) {
    done.clear();
    int rc = c->fuse->Poll(1, &done, c->fuse->timeout_ms(), false);
    if (rc != 0) {
      *error = "waiting for replies: " + std::string(strerror(-rc));
      return rc;
    }
    for (const auto& d : done) {
      int64_t n = check(d);
      if (n < 0) {
        ++r->errors;
      } else {
        r->bytes += static_cast<uint64_t>(n);
      }
      ++r->ops;
      if (r->latencies_ns.size() < (1u << 22)) r->latencies_ns.push_back(d.latency_ns);
    }
    if (!fill()) return -EIO;
  }
  r->seconds = double(MonoNs() - start) / 1e9;
  return 0;
}

}  // namespace

int CmdBench(const DriverOptions& o) {
  if (!o.args.empty() &&
      (o.args[0] == "lookup-getattr" || o.args[0] == "smallfile" || o.args[0] == "readdir")) {
    return CmdBenchCycle(o);
  }
  if (o.args.empty() || (o.args[0] != "read" && o.args[0] != "meta")) {
    return Fail("bench needs read, meta, lookup-getattr, smallfile or readdir");
  }
  const bool is_read = o.args[0] == "read";
  const std::string path = o.Flag("path", "");
  if (path.empty()) return Fail("bench needs --path");
  const uint32_t qd = static_cast<uint32_t>(std::max(1, std::atoi(o.Flag("qd", "16").c_str())));
  const double seconds = std::max(0.1, std::atof(o.Flag("seconds", "5").c_str()));
  const uint64_t passes = std::strtoull(o.Flag("passes", "0").c_str(), nullptr, 10);
  const uint64_t size = is_read ? ParseSize(o.Flag("size", "1M")) : 0;
  if (is_read && (size == 0 || size > (1u << 20))) return Fail("--size must be 1..1M");
  if (qd >= o.queue_size) return Fail("--qd must be below the queue size");
  Connection c;
  std::string error;
  int rc = OpenConnection(o, qd, is_read ? static_cast<uint32_t>(size) : 0, &c, &error);
  if (rc != 0) return Fail(error);
  if (is_read && size > c.max_read) {
    return Fail("--size exceeds the negotiated maximum READ of " + std::to_string(c.max_read));
  }
  uint64_t node = 0;
  fuse_attr attr{};
  if ((rc = WalkPath(&c, path, &node, &attr)) != 0) return Fail(path + ": " + strerror(-rc));
  uint64_t fh = 0;
  fuse_open_out oo{};
  if (is_read) {
    if ((rc = c.fuse->Open(node, false, &oo)) != 0)
      return Fail("OPEN: " + std::string(strerror(-rc)));
    fh = oo.fh;
    if (attr.size < size) return Fail(path + " is smaller than --size");
  }
  const bool random = o.flags.count("random") != 0;
  const std::string op = o.Flag("op", "getattr");
  const uint64_t blocks = is_read ? attr.size / size : 0;
  std::mt19937_64 rng(42);
  fuse_read_in read_in{};  // Submit copies the arguments into guest RAM at once
  fuse_getattr_in getattr_in{};
  uint64_t parent = kRootNodeId;
  std::string leaf;
  if (!is_read && op == "lookup") {
    size_t slash = path.rfind('/');
    leaf = path.substr(slash + 1);
    std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    fuse_attr pa{};
    if ((rc = WalkPath(&c, dir, &parent, &pa)) != 0) return Fail(dir + ": " + strerror(-rc));
  } else if (!is_read && op != "getattr") {
    return Fail("--op must be getattr or lookup");
  }
  uint64_t lookups = 0;
  uint64_t lookup_node = 0;
  auto make = [&](uint64_t i) {
    RequestSpec r;
    r.nodeid = node;
    if (is_read) {
      fuse_read_in& in = read_in;
      in.fh = fh;
      in.offset = (random ? rng() % blocks : i % blocks) * size;
      in.size = static_cast<uint32_t>(size);
      r.opcode = FUSE_READ;
      r.args = &in;
      r.args_len = sizeof(in);
      r.out_pages = static_cast<uint32_t>(size);
    } else if (op == "getattr") {
      r.opcode = FUSE_GETATTR;
      r.args = &getattr_in;
      r.args_len = sizeof(getattr_in);
      r.out_args_len = sizeof(fuse_attr_out);
    } else {
      r.opcode = FUSE_LOOKUP;
      r.nodeid = parent;
      r.args = leaf.c_str();
      r.args_len = static_cast<uint32_t>(leaf.size() + 1);
      r.out_args_len = sizeof(fuse_entry_out);
    }
    return r;
  };
  auto check = [&](const Completion& d) -> int64_t {
    if (!d.has_header || d.out.error != 0) return -1;
    if (is_read) return d.out.len == 16 + size ? int64_t(size) : -1;
    if (op == "getattr") return d.out.len == 16 + sizeof(fuse_attr_out) ? 0 : -1;
    if (d.out.len != 16 + sizeof(fuse_entry_out)) return -1;
    ++lookups;
    return 0;
  };
  if (passes > 0 && !is_read) return Fail("--passes is for bench read");
  // --passes bounds the run by work instead of time (a cold read of every byte once).
  const uint64_t max_ops = passes > 0 ? passes * blocks : 0;
  const double run_seconds = passes > 0 ? 1e6 : seconds;
  CpuWindow cpu;
  cpu.Start(c.server_pid);
  Result r;
  rc = RunLoop(&c, qd, run_seconds, max_ops, make, check, &r, &error);
  cpu.Stop();
  if (rc != 0) return Fail(error);
  if (!is_read && op == "lookup" && lookups > 0) {
    // Every successful LOOKUP took a reference on the same node: give them back.
    fuse_entry_out e{};
    if (c.fuse->Lookup(parent, leaf, &e) == 0) {
      lookup_node = e.nodeid;
      c.lookups[lookup_node] += lookups + 1;
    }
  }
  if (is_read) c.fuse->Release(node, fh, false);
  ForgetAll(&c);
  const double ops_s = r.seconds > 0 ? double(r.ops) / r.seconds : 0;
  Json j;
  j.BeginObject()
      .Field("bench", is_read ? "read" : "meta")
      .Field("op", is_read ? std::string("read") : op)
      .Field("path", path)
      .Field("qd", qd)
      .Field("size", size)
      .Field("random", random)
      .Field("seconds", r.seconds)
      .Field("ops", r.ops)
      .Field("bytes", r.bytes)
      .Field("errors", r.errors)
      .Field("ops_per_s", ops_s)
      .Field("mb_per_s", r.seconds > 0 ? double(r.bytes) / r.seconds / 1e6 : 0.0);
  LatencyJson(j, r.latencies_ns);
  CpuJson(j, cpu, r.ops, r.ops);
  j.Field("used_len_mismatches", c.fuse->used_len_mismatches());
  j.EndObject();
  std::printf("%s\n", j.str().c_str());
  for (const auto& v : c.fuse->violations()) std::fprintf(stderr, "violation: %s\n", v.c_str());
  return r.errors == 0 && c.fuse->violations().empty() ? 0 : 1;
}

}  // namespace nydus::driver
