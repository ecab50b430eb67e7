#include "driver/cli/driver.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace nydus::driver {

int Fail(const std::string& error) {
  std::fprintf(stderr, "nydus_vu_driver: %s\n", error.c_str());
  return 1;
}

int PeerPid(int sock) {
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.pid;
}

namespace {
// Fields of /proc/<pid>/stat after the ")" that closes the command name.
std::vector<std::string> StatFields(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return {};
  size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> out;
  std::string field;
  while (rest >> field) out.push_back(field);
  return out;
}
}  // namespace

double ProcessCpuSeconds(int pid) {
  auto f = StatFields(pid);
  // After the name: state(3) ... utime is field 14, stime 15 (1-based over the whole line);
  // both cover every thread of the process.
  if (f.size() < 13) return -1;
  double ticks = std::stod(f[11]) + std::stod(f[12]);
  // Add the descendants: virtiofsd does its work in a child it forks into its sandbox.
  DIR* d = ::opendir("/proc");
  if (d != nullptr) {
    while (struct dirent* e = ::readdir(d)) {
      int child = std::atoi(e->d_name);
      if (child <= 0 || child == pid) continue;
      for (int p = child, depth = 0; p > 1 && depth < 16; ++depth) {
        auto cf = StatFields(p);
        if (cf.size() < 13) break;
        int ppid = std::atoi(cf[1].c_str());
        if (ppid == pid) {
          auto own = p == child ? cf : StatFields(child);
          if (own.size() >= 13) ticks += std::stod(own[11]) + std::stod(own[12]);
          break;
        }
        p = ppid;
      }
    }
    ::closedir(d);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

bool ProcessExited(int pid) {
  auto f = StatFields(pid);
  return f.empty() || f[0] == "Z" || f[0] == "X";
}

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "chardev";
    case S_IFBLK:
      return "blockdev";
    default:
      return "unknown";
  }
}

void AttrJson(Json& j, const fuse_attr& a) {
  j.Field("ino", uint64_t{a.ino})
      .Field("type", TypeName(a.mode))
      .Field("mode", uint32_t{a.mode})
      .Field("size", uint64_t{a.size})
      .Field("nlink", uint32_t{a.nlink})
      .Field("uid", uint32_t{a.uid})
      .Field("gid", uint32_t{a.gid})
      .Field("mtime", uint64_t{a.mtime})
      .Field("mtime_nsec", uint32_t{a.mtimensec})
      .Field("blocks", uint64_t{a.blocks});
}

uint64_t ParseSize(const std::string& s) {
  if (s.empty()) return 0;
  char* end = nullptr;
  uint64_t v = std::strtoull(s.c_str(), &end, 10);
  switch (end != nullptr ? *end : '\0') {
    case 'k':
    case 'K':
      return v << 10;
    case 'm':
    case 'M':
      return v << 20;
    case 'g':
    case 'G':
      return v << 30;
    default:
      return v;
  }
}

int OpenConnection(const DriverOptions& o, uint32_t slots, uint32_t data_cap, Connection* c,
                   std::string* error) {
  driver::frontend::SessionOptions so;
  so.flavor = o.flavor;
  so.ram_size = o.ram_mib << 20;
  so.queue_size = o.queue_size;
  so.num_request_queues = o.num_request_queues;
  so.mem_slots = o.mem_slots;
  so.timeout_ms = o.timeout_ms;
  c->session = std::make_unique<driver::frontend::FsFrontendSession>(so);
  int rc = c->session->Connect(o.socket, error);
  if (rc != 0) return rc;
  c->server_pid = o.server_pid != 0 ? o.server_pid : PeerPid(c->session->client().fd());
  if ((rc = c->session->Realize(error)) != 0) return rc;
  if ((rc = c->session->Start(error)) != 0) return rc;
  c->fuse = std::make_unique<FuseClient>(c->session.get(), slots, data_cap);
  c->fuse->set_timeout_ms(o.timeout_ms);
  if ((rc = c->fuse->Init(error)) != 0) return rc;
  rc = c->fuse->InitFuse(&c->init);
  if (rc != 0) {
    *error = "FUSE_INIT failed: " + std::string(strerror(rc < 0 ? -rc : rc));
    return rc;
  }
  // What Linux would use: max_pages when negotiated (else 32), at most queue size - 4 pages
  // (FUSE_HEADER_OVERHEAD), never beyond the slot buffers.
  uint32_t pages = (c->init.flags & FUSE_MAX_PAGES) != 0 ? c->init.max_pages : 32;
  pages = std::min<uint32_t>(pages, o.queue_size > 4 ? o.queue_size - 4u : 1u);
  c->max_read = std::min<uint32_t>(pages * kPageSize, data_cap);
  return 0;
}

int ForgetAll(Connection* c) {
  for (const auto& [node, n] : c->lookups) {
    int rc = c->fuse->Forget(node, n);
    if (rc != 0) return rc;
  }
  c->lookups.clear();
  return 0;
}

int WalkPath(Connection* c, const std::string& path, uint64_t* node, fuse_attr* attr) {
  if (path.empty() || path[0] != '/') return -EINVAL;
  uint64_t cur = kRootNodeId;
  fuse_attr_out ao{};
  int rc = c->fuse->Getattr(cur, &ao);
  if (rc != 0) return rc;
  *attr = ao.attr;
  size_t pos = 1;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string part =
        path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    if (part.empty()) continue;
    fuse_entry_out e{};
    rc = c->fuse->Lookup(cur, part, &e);
    if (rc != 0) return rc;
    if (e.nodeid == 0) return -ENOENT;  // a cached negative entry
    ++c->lookups[e.nodeid];
    cur = e.nodeid;
    *attr = e.attr;
  }
  *node = cur;
  return 0;
}

}  // namespace nydus::driver
