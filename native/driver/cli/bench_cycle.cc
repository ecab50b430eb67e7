// bench lookup-getattr / smallfile / readdir: metadata and small-file workloads over the entries
// of one directory, as a guest produces them.
//
// A "cycle" is a short chain of dependent requests on one directory entry; the next request of
// a chain goes out when the previous reply is in, like one guest thread doing stat() (LOOKUP,
// GETATTR) or open/read/close of a small file (LOOKUP, OPEN, READ, RELEASE). `qd` chains run at
// once (independent threads). The entries are listed first and one untimed pass over all of
// them warms both servers (inode tables, dentry and page caches), then the timed passes cycle
// through them for `seconds`. `readdir` lists the whole directory again and again with
// OPENDIR, READDIRPLUS of one page each (what Linux 6.1 asks for), RELEASEDIR: that chain is
// serial by nature, so it runs at queue depth 1.
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "driver/cli/bench_common.h"
#include "driver/cli/driver.h"

namespace nydus::driver {
namespace {

enum class Kind { kLookupGetattr, kSmallFile };

struct Stream {
  uint32_t item = 0;
  int stage = 0;
  uint64_t node = 0;
  uint64_t fh = 0;
  uint64_t start_ns = 0;
  bool failed = false;
};

struct CycleStats {
  uint64_t cycles = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t bytes = 0;
  std::vector<uint64_t> latencies_ns;
  double seconds = 0;
};

class CycleRunner {
 public:
  CycleRunner(Connection* c, Kind kind, uint64_t dir, const std::vector<std::string>* names,
              uint32_t read_size)
      : c_(c), kind_(kind), dir_(dir), names_(names), read_size_(read_size) {}

  // Runs chains until `seconds` passed or `max_cycles` chains started (0: no limit), then
  // drains the chains in flight; only finished chains count.
  int Run(uint32_t qd, double seconds, uint64_t max_cycles, CycleStats* st, std::string* error) {
    st_ = st;
    error_ = error;
    streams_.assign(qd, Stream{});
    slot_stream_.assign(c_->fuse->slots(), -1);
    const uint64_t start = MonoNs();
    end_ns_ = start + static_cast<uint64_t>(seconds * 1e9);
    max_cycles_ = max_cycles;
    started_ = 0;
    for (uint32_t i = 0; i < qd; ++i) {
      if (StartCycle(static_cast<int>(i)) < 0) return -EIO;
    }
    c_->fuse->Kick(1);
    std::vector<Completion> done;
    std::vector<std::pair<int, Completion*>> batch;
    while (c_->fuse->in_flight() > 0) {
      done.clear();
      int rc = c_->fuse->Poll(1, &done, c_->fuse->timeout_ms(), true);
      if (rc != 0) {
        *error = "waiting for replies: " + std::string(strerror(-rc));
        return rc;
      }
      // Map every completion to its chain before submitting anything: a new request may take
      // the slot of a completion later in this batch.
      batch.clear();
      for (auto& d : done) {
        batch.push_back({slot_stream_[d.slot], &d});
        slot_stream_[d.slot] = -1;
      }
      for (auto& [si, d] : batch) {
        if (si < 0) continue;
        if (Advance(si, *d) < 0) return -EIO;
      }
      c_->fuse->Kick(1);
    }
    st->seconds = double(MonoNs() - start) / 1e9;
    return 0;
  }

 private:
  // Starts a new chain on stream `si` if time and budget allow: 1 started, 0 not, < 0 error.
  int StartCycle(int si) {
    if (MonoNs() >= end_ns_ || (max_cycles_ != 0 && started_ >= max_cycles_)) return 0;
    Stream& s = streams_[static_cast<size_t>(si)];
    s = Stream{};
    s.item = static_cast<uint32_t>(next_item_++ % names_->size());
    s.start_ns = MonoNs();
    ++started_;
    return Submit(si) ? 1 : -1;
  }

  bool Submit(int si) {
    Stream& s = streams_[static_cast<size_t>(si)];
    RequestSpec r;
    switch (s.stage) {
      case 0: {  // LOOKUP dir/name
        const std::string& name = (*names_)[s.item];
        r.opcode = FUSE_LOOKUP;
        r.nodeid = dir_;
        r.args = name.c_str();
        r.args_len = static_cast<uint32_t>(name.size() + 1);
        r.out_args_len = sizeof(fuse_entry_out);
        break;
      }
      case 1:
        if (kind_ == Kind::kLookupGetattr) {
          r.opcode = FUSE_GETATTR;
          r.nodeid = s.node;
          r.args = &getattr_in_;
          r.args_len = sizeof(getattr_in_);
          r.out_args_len = sizeof(fuse_attr_out);
        } else {
          open_in_.flags = 0100000;  // O_RDONLY | O_LARGEFILE, as a guest's open(2)
          r.opcode = FUSE_OPEN;
          r.nodeid = s.node;
          r.args = &open_in_;
          r.args_len = sizeof(open_in_);
          r.out_args_len = sizeof(fuse_open_out);
        }
        break;
      case 2:
        read_in_ = fuse_read_in{};
        read_in_.fh = s.fh;
        read_in_.offset = 0;
        read_in_.size = read_size_;
        r.opcode = FUSE_READ;
        r.nodeid = s.node;
        r.args = &read_in_;
        r.args_len = sizeof(read_in_);
        r.out_pages = read_size_;
        break;
      default:
        release_in_ = fuse_release_in{};
        release_in_.fh = s.fh;
        r.opcode = FUSE_RELEASE;
        r.nodeid = s.node;
        r.args = &release_in_;
        r.args_len = sizeof(release_in_);
        break;
    }
    int slot = c_->fuse->Submit(r, false);  // Submit copies the arguments at once
    if (slot < 0) {
      *error_ = "submit: " + std::string(strerror(-slot));
      return false;
    }
    slot_stream_[static_cast<size_t>(slot)] = si;
    ++st_->requests;
    return true;
  }

  // Handles the reply to the current stage of chain `si` and sends the next request.
  int Advance(int si, const Completion& d) {
    Stream& s = streams_[static_cast<size_t>(si)];
    const bool ok = d.has_header && d.out.error == 0;
    int next = -1;  // -1: the chain is over
    switch (s.stage) {
      case 0:
        if (ok && d.payload.size() == sizeof(fuse_entry_out)) {
          fuse_entry_out e;
          memcpy(&e, d.payload.data(), sizeof(e));
          if (e.nodeid != 0) {
            ++c_->lookups[e.nodeid];  // returned with FORGET at the end
            s.node = e.nodeid;
            next = 1;
          }
        }
        if (next < 0) s.failed = true;
        break;
      case 1:
        if (kind_ == Kind::kLookupGetattr) {
          if (!ok || d.payload.size() != sizeof(fuse_attr_out)) s.failed = true;
        } else if (ok && d.payload.size() == sizeof(fuse_open_out)) {
          fuse_open_out oo;
          memcpy(&oo, d.payload.data(), sizeof(oo));
          s.fh = oo.fh;
          next = 2;
        } else {
          s.failed = true;
        }
        break;
      case 2:
        // A short file returns less than asked; anything else than data is a failure. The
        // handle is released either way.
        if (ok && d.payload.size() <= read_size_) {
          st_->bytes += d.payload.size();
        } else {
          s.failed = true;
        }
        next = 3;
        break;
      default:
        if (!ok) s.failed = true;
        break;
    }
    if (next >= 0) {
      s.stage = next;
      return Submit(si) ? 0 : -1;
    }
    ++st_->cycles;
    if (s.failed) ++st_->errors;
    if (st_->latencies_ns.size() < (1u << 22)) st_->latencies_ns.push_back(MonoNs() - s.start_ns);
    return StartCycle(si) < 0 ? -1 : 0;
  }

  Connection* c_;
  Kind kind_;
  uint64_t dir_;
  const std::vector<std::string>* names_;
  uint32_t read_size_;
  std::vector<Stream> streams_;
  std::vector<int> slot_stream_;
  CycleStats* st_ = nullptr;
  std::string* error_ = nullptr;
  uint64_t end_ns_ = 0;
  uint64_t max_cycles_ = 0;
  uint64_t started_ = 0;
  uint64_t next_item_ = 0;
  fuse_getattr_in getattr_in_{};
  fuse_open_in open_in_{};
  fuse_read_in read_in_{};
  fuse_release_in release_in_{};
};

int Readdir(const DriverOptions& o, Connection* c, uint64_t node, double seconds) {
  std::string error;
  std::vector<DirEntry> entries;
  // Warm-up listing (untimed): fills the server's tables as the timed listings will find them.
  if (ListDir(c, node, &entries, &error) != 0) return Fail(error);
  const uint64_t per_listing = entries.size();
  CpuWindow cpu;
  cpu.Start(c->server_pid);
  const uint64_t start = MonoNs();
  const uint64_t end = start + static_cast<uint64_t>(seconds * 1e9);
  uint64_t listings = 0;
  uint64_t requests = 0;
  uint64_t total = 0;
  std::vector<uint64_t> lat;
  do {
    entries.clear();
    const uint64_t t0 = MonoNs();
    if (ListDir(c, node, &entries, &error, &requests) != 0) return Fail(error);
    lat.push_back(MonoNs() - t0);
    if (entries.size() != per_listing) {
      return Fail("listing " + std::to_string(listings) + " has " + std::to_string(entries.size()) +
                  " entries, the first had " + std::to_string(per_listing));
    }
    total += entries.size();
    ++listings;
  } while (MonoNs() < end);
  const double secs = double(MonoNs() - start) / 1e9;
  cpu.Stop();
  if (ForgetAll(c) != 0) return Fail("FORGET failed");
  Json j;
  j.BeginObject()
      .Field("bench", "readdir")
      .Field("op", "readdirplus")
      .Field("path", o.Flag("path", ""))
      .Field("qd", 1)
      .Field("entries", per_listing)
      .Field("listings", listings)
      .Field("seconds", secs)
      .Field("ops", total)
      .Field("requests", requests)
      .Field("errors", 0)
      .Field("ops_per_s", secs > 0 ? double(total) / secs : 0.0)
      .Field("requests_per_s", secs > 0 ? double(requests) / secs : 0.0);
  LatencyJson(j, lat);  // per whole listing
  CpuJson(j, cpu, total, requests);
  j.Field("used_len_mismatches", c->fuse->used_len_mismatches());
  j.EndObject();
  std::printf("%s\n", j.str().c_str());
  for (const auto& v : c->fuse->violations()) std::fprintf(stderr, "violation: %s\n", v.c_str());
  return c->fuse->violations().empty() ? 0 : 1;
}

}  // namespace

int CmdBenchCycle(const DriverOptions& o) {
  const std::string& what = o.args[0];
  const std::string path = o.Flag("path", o.Flag("dir", ""));
  if (path.empty()) return Fail("bench " + what + " needs --path DIR");
  const double seconds = std::max(0.1, std::atof(o.Flag("seconds", "5").c_str()));
  uint32_t qd = static_cast<uint32_t>(std::max(1, std::atoi(o.Flag("qd", "1").c_str())));
  if (what == "readdir") qd = 1;
  if (qd >= o.queue_size) return Fail("--qd must be below the queue size");
  const uint64_t read_size = ParseSize(o.Flag("size", "4K"));
  if (read_size == 0 || read_size > (1u << 20)) return Fail("--size must be 1..1M");
  Connection c;
  std::string error;
  // Listing needs one page per request; a small-file READ needs read_size.
  const uint32_t data_cap = static_cast<uint32_t>(std::max<uint64_t>(kPageSize, read_size));
  int rc = OpenConnection(o, std::max<uint32_t>(qd, 2), data_cap, &c, &error);
  if (rc != 0) return Fail(error);
  uint64_t dir = 0;
  fuse_attr attr{};
  if ((rc = WalkPath(&c, path, &dir, &attr)) != 0) return Fail(path + ": " + strerror(-rc));
  if ((attr.mode & S_IFMT) != S_IFDIR) return Fail(path + ": not a directory");
  if (what == "readdir") return Readdir(o, &c, dir, seconds);

  const Kind kind = what == "smallfile" ? Kind::kSmallFile : Kind::kLookupGetattr;
  std::vector<DirEntry> entries;
  if (ListDir(&c, dir, &entries, &error) != 0) return Fail(path + ": " + error);
  std::vector<std::string> names;
  for (const auto& e : entries) {
    if (kind == Kind::kSmallFile && (e.entry.attr.mode & S_IFMT) != S_IFREG) continue;
    names.push_back(e.name);
  }
  if (names.empty()) return Fail(path + ": no entries to work on");
  std::sort(names.begin(), names.end());
  CycleRunner runner(&c, kind, dir, &names, static_cast<uint32_t>(read_size));
  CycleStats warm;
  if (runner.Run(qd, 1e6, names.size(), &warm, &error) != 0) return Fail(error);
  if (warm.errors != 0) {
    return Fail("warm-up pass: " + std::to_string(warm.errors) + " of " +
                std::to_string(warm.cycles) + " cycles failed");
  }
  CycleStats st;
  CpuWindow cpu;
  cpu.Start(c.server_pid);
  rc = runner.Run(qd, seconds, 0, &st, &error);
  cpu.Stop();
  if (rc != 0) return Fail(error);
  if ((rc = ForgetAll(&c)) != 0) return Fail("FORGET: " + std::string(strerror(-rc)));
  Json j;
  j.BeginObject()
      .Field("bench", what)
      .Field("op", kind == Kind::kSmallFile ? "lookup+open+read+release" : "lookup+getattr")
      .Field("path", path)
      .Field("qd", qd)
      .Field("size", kind == Kind::kSmallFile ? read_size : uint64_t{0})
      .Field("entries", uint64_t{names.size()})
      .Field("warmup_seconds", warm.seconds)
      .Field("seconds", st.seconds)
      .Field("ops", st.cycles)
      .Field("requests", st.requests)
      .Field("bytes", st.bytes)
      .Field("errors", st.errors)
      .Field("ops_per_s", st.seconds > 0 ? double(st.cycles) / st.seconds : 0.0)
      .Field("requests_per_s", st.seconds > 0 ? double(st.requests) / st.seconds : 0.0);
  LatencyJson(j, st.latencies_ns);  // per cycle
  CpuJson(j, cpu, st.cycles, st.requests);
  j.Field("used_len_mismatches", c.fuse->used_len_mismatches());
  j.EndObject();
  std::printf("%s\n", j.str().c_str());
  for (const auto& v : c.fuse->violations()) std::fprintf(stderr, "violation: %s\n", v.c_str());
  return st.errors == 0 && c.fuse->violations().empty() ? 0 : 1;
}

}  // namespace nydus::driver
