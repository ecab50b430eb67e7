// nydus_vu_driver: a vhost-user-fs frontend driver. It plays QEMU 7.2 (or cloud-hypervisor) and
// a Linux 6.1 guest's virtio-fs driver against a backend socket: memfd guest RAM, the vhost-user
// message sequences, split rings with indirect descriptors, FUSE requests. It checks the
// backend's replies, measures it, and injects faults. Works against our backend and against
// QEMU's virtiofsd.
//
//   nydus_vu_driver --socket S [options] <command> [args]
//
// Commands print JSON on stdout (except `cat`, which prints the file) and exit 0 on success,
// 1 on a failed check or transport error (with a message on stderr), 2 on bad usage.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "driver/cli/fuse_client.h"
#include "driver/cli/json.h"
#include "driver/frontend/fs_session.h"

namespace nydus::driver {

struct DriverOptions {
  std::string socket;
  driver::frontend::Flavor flavor = driver::frontend::Flavor::kQemu72;
  uint16_t queue_size = 1024;
  uint64_t ram_mib = 256;
  uint32_t num_request_queues = 1;
  bool mem_slots = true;
  int timeout_ms = 10000;
  int server_pid = 0;  // 0: the socket peer's pid (SO_PEERCRED)
  std::string command;
  std::vector<std::string> args;             // positional arguments after the command
  std::map<std::string, std::string> flags;  // --key value after the command

  std::string Flag(const std::string& k, const std::string& def) const {
    auto it = flags.find(k);
    return it == flags.end() ? def : it->second;
  }
};

// A started device with FUSE initialised.
struct Connection {
  std::unique_ptr<driver::frontend::FsFrontendSession> session;
  std::unique_ptr<FuseClient> fuse;
  fuse_init_out init{};
  int server_pid = 0;
  uint32_t max_read = 0;  // largest READ the negotiation allows
  // Lookups taken (nodeid -> count), returned with FORGETs on hiprio by ForgetAll.
  std::map<uint64_t, uint64_t> lookups;
};

// One READDIRPLUS record.
struct DirEntry {
  std::string name;
  fuse_entry_out entry;
  uint64_t off;
  uint32_t type;
};

// Parses one READDIRPLUS reply; false on a malformed record (reported as such).
bool ParseDirentPlus(const std::vector<uint8_t>& buf, std::vector<DirEntry>* out,
                     std::string* error);
// Reads a whole directory with OPENDIR / READDIRPLUS... / RELEASEDIR. Entries with a nodeid
// are counted as lookups ("." and ".." are not, as the kernel does). `requests`, when given,
// counts the FUSE requests sent.
int ListDir(Connection* c, uint64_t node, std::vector<DirEntry>* out, std::string* error,
            uint64_t* requests = nullptr);

int OpenConnection(const DriverOptions& o, uint32_t slots, uint32_t data_cap, Connection* c,
                   std::string* error);
// Sends FORGET for every lookup taken (exercises the hiprio queue like a guest's drop_caches).
int ForgetAll(Connection* c);
// Resolves an absolute path with LOOKUPs ("/" is the root, attributes from GETATTR).
int WalkPath(Connection* c, const std::string& path, uint64_t* node, fuse_attr* attr);
int PeerPid(int sock);
// utime+stime of a process in seconds, from /proc/<pid>/stat; < 0 if unavailable.
double ProcessCpuSeconds(int pid);
// True when the process is gone or a zombie.
bool ProcessExited(int pid);
const char* TypeName(uint32_t mode);
void AttrJson(Json& j, const fuse_attr& a);
uint64_t ParseSize(const std::string& s);  // "4K", "1M", "4096"

int CmdInfo(const DriverOptions& o);
int CmdLs(const DriverOptions& o);
int CmdStat(const DriverOptions& o);
int CmdCat(const DriverOptions& o);
int CmdTree(const DriverOptions& o);
int CmdStatfs(const DriverOptions& o);
int CmdBench(const DriverOptions& o);
int CmdBenchCycle(const DriverOptions& o);  // bench lookup-getattr | smallfile | readdir
int CmdBounds(const DriverOptions& o);      // machine bounds; needs no backend
int CmdRebootCycle(const DriverOptions& o);
int CmdFault(const DriverOptions& o);

// Prints `error` on stderr prefixed with the program name and returns 1.
int Fail(const std::string& error);

}  // namespace nydus::driver
