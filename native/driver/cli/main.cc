// Command line of nydus_vu_driver (see driver.h).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"
#include "driver/cli/driver.h"

namespace {

constexpr const char* kUsage = R"(usage: nydus_vu_driver --socket PATH [options] COMMAND [args]

Plays QEMU 7.2 (or cloud-hypervisor) and a Linux 6.1 virtio-fs guest against a vhost-user-fs
backend socket.

options:
  --socket PATH            backend socket (required)
  --flavor qemu|ch         frontend message sequence (default qemu)
  --queue-size N           virtqueue size, power of two (default 1024)
  --ram-mib N              guest RAM (default 256)
  --request-queues N       request queues besides hiprio (default 1)
  --no-mem-slots           do not negotiate CONFIGURE_MEM_SLOTS (SET_MEM_TABLE only)
  --timeout-ms N           per-request and per-message timeout (default 10000)
  --server-pid PID         process whose CPU time is measured (default: the socket peer)

commands:
  info                     negotiation results and INIT reply as JSON
  ls PATH                  READDIRPLUS listing as JSON
  stat PATH                attributes as JSON
  cat PATH                 file contents on stdout
  statfs                   STATFS as JSON
  tree [PATH]              recursive listing with attributes, symlink targets and sha256
  bench read --path P [--size 1M] [--qd 16] [--seconds 5] [--random]
  bench meta --path P [--op getattr|lookup] [--qd 16] [--seconds 5]
  bench read ... --passes N  stop after N passes over the file instead of after --seconds
  bench lookup-getattr --path DIR [--qd 1] [--seconds 5]
                           LOOKUP then GETATTR of every entry of DIR, `qd` chains at once
  bench smallfile --path DIR [--qd 1] [--size 4K] [--seconds 5]
                           LOOKUP, OPEN, READ, RELEASE of every file of DIR
  bench readdir --path DIR [--seconds 5]
                           whole listings: OPENDIR, READDIRPLUS (one page each), RELEASEDIR
  bounds pread --file F | memcpy | codec --file F --algo A | digest --algo blake3|sha256
                           machine bounds (no --socket): page-cache read, memcpy,
                           single-core decompression and digests (see bounds.cc)
  reboot-cycle [--cycles 2]  start, use, stop (GET_VRING_BASE), start again on one connection
  fault KIND               inject a fault and report how the backend reacted; KIND is one of
                           bad-addr desc-loop nested-indirect indirect-bad-len next-out-of-range
                           zero-length write-before-read avail-jump head-out-of-range
                           truncated-fuse short-fuse-header unknown-opcode no-reply-space
                           oversize-msg bad-size-msg fd-on-plain-msg too-many-fds unknown-msg
                           half-message abrupt-disconnect bad-ring-addr (or "list")
)";

int Usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "nydus_vu_driver: %s\n\n", why);
  std::fputs(kUsage, stderr);
  return 2;
}

bool ParseU64(const char* s, uint64_t* out) {
  char* end = nullptr;
  *out = std::strtoull(s, &end, 10);
  return end != nullptr && *end == '\0' && end != s;
}

}  // namespace

int main(int argc, char** argv) {
  using nydus::driver::DriverOptions;
  ::signal(SIGPIPE, SIG_IGN);
  nydus::SetLogLevel(nydus::LogLevel::kWarn);
  DriverOptions o;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) break;
    auto value = [&](const char** v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    const char* v = nullptr;
    uint64_t n = 0;
    if (a == "--help" || a == "-h") return Usage(nullptr), 0;
    if (a == "--no-mem-slots") {
      o.mem_slots = false;
    } else if (!value(&v)) {
      return Usage(("missing value for " + a).c_str());
    } else if (a == "--socket") {
      o.socket = v;
    } else if (a == "--flavor") {
      if (strcmp(v, "qemu") == 0) {
        o.flavor = nydus::driver::frontend::Flavor::kQemu72;
      } else if (strcmp(v, "ch") == 0 || strcmp(v, "cloud-hypervisor") == 0) {
        o.flavor = nydus::driver::frontend::Flavor::kCloudHypervisor;
      } else {
        return Usage("--flavor must be qemu or ch");
      }
    } else if (!ParseU64(v, &n)) {
      return Usage((a + " needs a number").c_str());
    } else if (a == "--queue-size") {
      if (n == 0 || n > 32768 || (n & (n - 1)) != 0) return Usage("bad --queue-size");
      o.queue_size = static_cast<uint16_t>(n);
    } else if (a == "--ram-mib") {
      if (n < 16 || n > 65536) return Usage("--ram-mib must be 16..65536");
      o.ram_mib = n;
    } else if (a == "--request-queues") {
      if (n == 0 || n > 64) return Usage("--request-queues must be 1..64");
      o.num_request_queues = static_cast<uint32_t>(n);
    } else if (a == "--timeout-ms") {
      o.timeout_ms = static_cast<int>(n);
    } else if (a == "--server-pid") {
      o.server_pid = static_cast<int>(n);
    } else {
      return Usage(("unknown option " + a).c_str());
    }
  }
  if (i >= argc) return Usage("no command");
  o.command = argv[i++];
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2);
      if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        o.flags[key] = argv[++i];
      } else {
        o.flags[key] = "1";
      }
    } else {
      o.args.push_back(a);
    }
  }
  if (o.command == "fault" && !o.args.empty() && o.args[0] == "list") {
    return nydus::driver::CmdFault(o);
  }
  if (o.command == "bounds") return nydus::driver::CmdBounds(o);
  if (o.socket.empty()) return Usage("--socket is required");
  if (o.command == "info") return nydus::driver::CmdInfo(o);
  if (o.command == "ls") return nydus::driver::CmdLs(o);
  if (o.command == "stat") return nydus::driver::CmdStat(o);
  if (o.command == "cat") return nydus::driver::CmdCat(o);
  if (o.command == "statfs") return nydus::driver::CmdStatfs(o);
  if (o.command == "tree") return nydus::driver::CmdTree(o);
  if (o.command == "bench") return nydus::driver::CmdBench(o);
  if (o.command == "reboot-cycle") return nydus::driver::CmdRebootCycle(o);
  if (o.command == "fault") return nydus::driver::CmdFault(o);
  return Usage(("unknown command " + o.command).c_str());
}
