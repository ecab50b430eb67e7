// info, ls, stat, cat, statfs, tree, reboot-cycle.
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "driver/cli/driver.h"
#include "driver/cli/sha256.h"

namespace nydus::driver {
namespace {

constexpr uint32_t kSlots = 4;
constexpr uint32_t kDataCap = 1 << 20;

std::string Errno(int rc) { return strerror(rc < 0 ? -rc : rc); }

int HashFile(Connection* c, uint64_t node, uint64_t size, std::string* digest, uint64_t* got,
             std::string* error) {
  fuse_open_out oo{};
  int rc = c->fuse->Open(node, false, &oo);
  if (rc != 0) {
    *error = "OPEN: " + Errno(rc);
    return rc;
  }
  Sha256 h;
  *got = 0;
  for (;;) {
    std::vector<uint8_t> data;
    rc = c->fuse->Read(node, oo.fh, *got, c->max_read, &data);
    if (rc != 0) {
      *error = "READ: " + Errno(rc);
      return rc;
    }
    if (data.empty()) break;
    h.Update(data.data(), data.size());
    *got += data.size();
    if (data.size() < c->max_read && *got >= size) break;
  }
  *digest = h.HexDigest();
  rc = c->fuse->Release(node, oo.fh, false);
  if (rc != 0) *error = "RELEASE: " + Errno(rc);
  return rc;
}

int Finish(Connection* c, const Json& j) {
  int rc = ForgetAll(c);
  if (rc != 0) return Fail("FORGET: " + Errno(rc));
  std::printf("%s\n", j.str().c_str());
  for (const auto& v : c->fuse->violations()) std::fprintf(stderr, "violation: %s\n", v.c_str());
  return c->fuse->violations().empty() ? 0 : 1;
}

int Open(const DriverOptions& o, Connection* c) {
  std::string error;
  int rc = OpenConnection(o, kSlots, kDataCap, c, &error);
  if (rc != 0) Fail(error.empty() ? Errno(rc) : error);
  return rc;
}

}  // namespace

bool ParseDirentPlus(const std::vector<uint8_t>& buf, std::vector<DirEntry>* out,
                     std::string* error) {
  size_t pos = 0;
  while (pos < buf.size()) {
    if (buf.size() - pos < sizeof(fuse_direntplus)) {
      *error = "truncated direntplus record";
      return false;
    }
    fuse_direntplus d;
    memcpy(&d, buf.data() + pos, sizeof(d));
    size_t rec = DirentAlign(sizeof(fuse_direntplus) + d.dirent.namelen);
    if (d.dirent.namelen == 0 || d.dirent.namelen > 1024 ||
        buf.size() - pos < sizeof(fuse_direntplus) + d.dirent.namelen) {
      *error = "direntplus name length " + std::to_string(d.dirent.namelen) + " out of range";
      return false;
    }
    DirEntry e;
    e.name.assign(reinterpret_cast<const char*>(buf.data() + pos + sizeof(fuse_direntplus)),
                  d.dirent.namelen);
    e.entry = d.entry_out;
    e.off = d.dirent.off;
    e.type = d.dirent.type;
    out->push_back(std::move(e));
    pos += std::min(rec, buf.size() - pos);
  }
  return true;
}

int ListDir(Connection* c, uint64_t node, std::vector<DirEntry>* out, std::string* error,
            uint64_t* requests) {
  uint64_t sent = 0;
  struct Count {  // every return path reports what was sent
    uint64_t* requests;
    const uint64_t& sent;
    ~Count() {
      if (requests != nullptr) *requests += sent;
    }
  } count{requests, sent};
  fuse_open_out oo{};
  ++sent;
  int rc = c->fuse->Open(node, true, &oo);
  if (rc != 0) {
    *error = "OPENDIR: " + Errno(rc);
    return rc;
  }
  uint64_t off = 0;
  for (int guard = 0; guard < 1000000; ++guard) {
    std::vector<uint8_t> buf;
    ++sent;
    rc = c->fuse->ReadDirPlus(node, oo.fh, off, &buf);
    if (rc != 0) {
      *error = "READDIRPLUS: " + Errno(rc);
      return rc;
    }
    if (buf.empty()) break;
    std::vector<DirEntry> batch;
    if (!ParseDirentPlus(buf, &batch, error)) return -EPROTO;
    if (batch.empty()) break;
    for (auto& e : batch) {
      if (e.name == "." || e.name == "..") continue;
      if (e.entry.nodeid != 0) ++c->lookups[e.entry.nodeid];
      out->push_back(e);
    }
    if (batch.back().off == off) {
      *error = "READDIRPLUS cookie did not advance";
      return -EPROTO;
    }
    off = batch.back().off;
  }
  ++sent;
  rc = c->fuse->Release(node, oo.fh, true);
  if (rc != 0) *error = "RELEASEDIR: " + Errno(rc);
  return rc;
}

int CmdInfo(const DriverOptions& o) {
  Connection c;
  if (Open(o, &c) != 0) return 1;
  auto& s = *c.session;
  Json j;
  j.BeginObject()
      .Field("flavor", o.flavor == driver::frontend::Flavor::kQemu72 ? "qemu" : "cloud-hypervisor")
      .Field("server_pid", c.server_pid);
  j.Key("backend_features").Hex(s.backend_features());
  j.Key("backend_protocol_features").Hex(s.backend_protocol_features());
  j.Key("acked_features").Hex(s.acked_features());
  j.Key("acked_protocol_features").Hex(s.acked_protocol_features());
  j.Field("queue_num", s.queue_num()).Field("max_mem_slots", s.max_mem_slots());
  j.Key("init").BeginObject().Field("major", c.init.major).Field("minor", c.init.minor);
  j.Key("flags").Hex(c.init.flags);
  j.Key("flags2").Hex(c.init.flags2);
  j.Field("max_readahead", c.init.max_readahead)
      .Field("max_write", c.init.max_write)
      .Field("max_pages", uint32_t{c.init.max_pages})
      .Field("time_gran", c.init.time_gran)
      .Field("max_background", uint32_t{c.init.max_background})
      .EndObject();
  j.Field("max_read", c.max_read);
  // What a guest sends right after mounting and before its first write, then at umount.
  fuse_attr_out ao{};
  j.Field("getattr_root", Errno(c.fuse->Getattr(kRootNodeId, &ao)));
  fuse_statfs_out so{};
  j.Field("statfs", Errno(c.fuse->Statfs(kRootNodeId, &so)));
  std::vector<uint8_t> xv;
  j.Field("getxattr_security_capability",
          Errno(c.fuse->Getxattr(kRootNodeId, "security.capability", 0, &xv)));
  j.Field("destroy", Errno(c.fuse->Destroy()));
  j.Key("trace").BeginArray();
  for (const auto& m : s.client().trace()) j.Str(m);
  j.EndArray().EndObject();
  return Finish(&c, j);
}

int CmdStat(const DriverOptions& o) {
  if (o.args.empty()) return Fail("stat needs a PATH");
  Connection c;
  if (Open(o, &c) != 0) return 1;
  uint64_t node = 0;
  fuse_attr a{};
  int rc = WalkPath(&c, o.args[0], &node, &a);
  if (rc != 0) return Fail(o.args[0] + ": " + Errno(rc));
  Json j;
  j.BeginObject().Field("path", o.args[0]).Field("nodeid", node);
  AttrJson(j, a);
  j.EndObject();
  return Finish(&c, j);
}

int CmdStatfs(const DriverOptions& o) {
  Connection c;
  if (Open(o, &c) != 0) return 1;
  fuse_statfs_out s{};
  int rc = c.fuse->Statfs(kRootNodeId, &s);
  if (rc != 0) return Fail("STATFS: " + Errno(rc));
  Json j;
  j.BeginObject()
      .Field("blocks", uint64_t{s.st.blocks})
      .Field("bfree", uint64_t{s.st.bfree})
      .Field("bavail", uint64_t{s.st.bavail})
      .Field("files", uint64_t{s.st.files})
      .Field("ffree", uint64_t{s.st.ffree})
      .Field("bsize", s.st.bsize)
      .Field("namelen", s.st.namelen)
      .Field("frsize", s.st.frsize)
      .EndObject();
  return Finish(&c, j);
}

int CmdLs(const DriverOptions& o) {
  std::string path = o.args.empty() ? "/" : o.args[0];
  Connection c;
  if (Open(o, &c) != 0) return 1;
  uint64_t node = 0;
  fuse_attr a{};
  int rc = WalkPath(&c, path, &node, &a);
  if (rc != 0) return Fail(path + ": " + Errno(rc));
  std::vector<DirEntry> entries;
  std::string error;
  if (ListDir(&c, node, &entries, &error) != 0) return Fail(path + ": " + error);
  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& x, const DirEntry& y) { return x.name < y.name; });
  Json j;
  j.BeginObject().Field("path", path).Key("entries").BeginArray();
  for (const auto& e : entries) {
    j.BeginObject().Field("name", e.name).Field("nodeid", uint64_t{e.entry.nodeid});
    AttrJson(j, e.entry.attr);
    j.EndObject();
  }
  j.EndArray().EndObject();
  return Finish(&c, j);
}

int CmdCat(const DriverOptions& o) {
  if (o.args.empty()) return Fail("cat needs a PATH");
  Connection c;
  if (Open(o, &c) != 0) return 1;
  uint64_t node = 0;
  fuse_attr a{};
  int rc = WalkPath(&c, o.args[0], &node, &a);
  if (rc != 0) return Fail(o.args[0] + ": " + Errno(rc));
  if ((a.mode & S_IFMT) == S_IFLNK) {
    std::string target;
    c.fuse->Readlink(node, &target);
    return Fail(o.args[0] + ": is a symlink to " + target + " (cat does not follow links)");
  }
  if ((a.mode & S_IFMT) != S_IFREG) return Fail(o.args[0] + ": not a regular file");
  fuse_open_out oo{};
  if ((rc = c.fuse->Open(node, false, &oo)) != 0) return Fail("OPEN: " + Errno(rc));
  uint64_t off = 0;
  for (;;) {
    std::vector<uint8_t> data;
    if ((rc = c.fuse->Read(node, oo.fh, off, c.max_read, &data)) != 0) {
      return Fail("READ: " + Errno(rc));
    }
    if (data.empty()) break;
    if (std::fwrite(data.data(), 1, data.size(), stdout) != data.size()) return Fail("stdout");
    off += data.size();
  }
  std::fflush(stdout);
  if ((rc = c.fuse->Release(node, oo.fh, false)) != 0) return Fail("RELEASE: " + Errno(rc));
  if ((rc = ForgetAll(&c)) != 0) return Fail("FORGET: " + Errno(rc));
  return c.fuse->violations().empty() ? 0 : 1;
}

int CmdTree(const DriverOptions& o) {
  std::string root = o.args.empty() ? "/" : o.args[0];
  Connection c;
  if (Open(o, &c) != 0) return 1;
  uint64_t node = 0;
  fuse_attr a{};
  int rc = WalkPath(&c, root, &node, &a);
  if (rc != 0) return Fail(root + ": " + Errno(rc));
  struct Item {
    std::string path;
    fuse_attr attr;
    std::string target;
    std::string sha256;
  };
  std::vector<Item> items;
  std::vector<std::pair<std::string, uint64_t>> stack = {{"", node}};
  std::string error;
  while (!stack.empty()) {
    auto [dir_path, dir_node] = stack.back();
    stack.pop_back();
    std::vector<DirEntry> entries;
    if (ListDir(&c, dir_node, &entries, &error) != 0) {
      return Fail((dir_path.empty() ? "/" : dir_path) + ": " + error);
    }
    for (auto& e : entries) {
      Item it;
      it.path = dir_path + "/" + e.name;
      uint64_t child = e.entry.nodeid;
      it.attr = e.entry.attr;
      if (child == 0) {  // no entry info in the listing: look it up
        fuse_entry_out le{};
        if ((rc = c.fuse->Lookup(dir_node, e.name, &le)) != 0) {
          return Fail(it.path + ": LOOKUP: " + Errno(rc));
        }
        ++c.lookups[le.nodeid];
        child = le.nodeid;
        it.attr = le.attr;
      }
      uint32_t type = it.attr.mode & S_IFMT;
      if (type == S_IFDIR) {
        stack.push_back({it.path, child});
      } else if (type == S_IFLNK) {
        if ((rc = c.fuse->Readlink(child, &it.target)) != 0) {
          return Fail(it.path + ": READLINK: " + Errno(rc));
        }
      } else if (type == S_IFREG) {
        uint64_t got = 0;
        if (HashFile(&c, child, it.attr.size, &it.sha256, &got, &error) != 0) {
          return Fail(it.path + ": " + error);
        }
        if (got != it.attr.size) {
          return Fail(it.path + ": read " + std::to_string(got) + " bytes, size is " +
                      std::to_string(it.attr.size));
        }
      }
      items.push_back(std::move(it));
    }
  }
  std::sort(items.begin(), items.end(),
            [](const Item& x, const Item& y) { return x.path < y.path; });
  Json j;
  j.BeginObject().Field("root", root).Key("entries").BeginArray();
  for (const auto& it : items) {
    j.BeginObject().Field("path", it.path);
    AttrJson(j, it.attr);
    if (!it.target.empty()) j.Field("target", it.target);
    if (!it.sha256.empty()) j.Field("sha256", it.sha256);
    j.EndObject();
  }
  j.EndArray().EndObject();
  return Finish(&c, j);
}

int CmdRebootCycle(const DriverOptions& o) {
  int cycles = std::max(1, std::atoi(o.Flag("cycles", "2").c_str()));
  driver::frontend::SessionOptions so;
  so.flavor = o.flavor;
  so.ram_size = o.ram_mib << 20;
  so.queue_size = o.queue_size;
  so.num_request_queues = o.num_request_queues;
  so.mem_slots = o.mem_slots;
  so.timeout_ms = o.timeout_ms;
  driver::frontend::FsFrontendSession s(so);
  std::string error;
  if (s.Connect(o.socket, &error) != 0 || s.Realize(&error) != 0) return Fail(error);
  Json j;
  j.BeginObject().Key("cycles").BeginArray();
  bool all_ok = true;
  size_t mem_messages_after_first = 0;
  for (int i = 0; i < cycles; ++i) {
    size_t mark = s.client().trace().size();
    if (s.Start(&error) != 0) return Fail("start " + std::to_string(i) + ": " + error);
    for (size_t k = mark; i > 0 && k < s.client().trace().size(); ++k) {
      if (s.client().trace()[k].find("MEM") != std::string::npos) ++mem_messages_after_first;
    }
    // A rebooted guest's driver: FUSE INIT again (no DESTROY happened), then some traffic.
    FuseClient fuse(&s, 2, 64 * 1024);
    fuse.set_timeout_ms(o.timeout_ms);
    if (fuse.Init(&error) != 0) return Fail(error);
    fuse_init_out init{};
    int rc = fuse.InitFuse(&init);
    fuse_attr_out ao{};
    if (rc == 0) rc = fuse.Getattr(kRootNodeId, &ao);
    fuse_statfs_out st{};
    if (rc == 0) rc = fuse.Statfs(kRootNodeId, &st);
    std::vector<uint32_t> bases;
    int stop_rc = s.Stop(&bases, &error);
    bool ok = rc == 0 && stop_rc == 0 && fuse.violations().empty();
    all_ok = all_ok && ok;
    j.BeginObject().Field("ok", ok).Field("init_minor", init.minor);
    if (rc != 0) j.Field("error", Errno(rc));
    if (stop_rc != 0) j.Field("stop_error", error);
    j.Key("bases").BeginArray();
    for (uint32_t b : bases) j.U64(b);
    j.EndArray().EndObject();
  }
  j.EndArray().Field("memory_resent_after_first_start", uint64_t{mem_messages_after_first});
  j.EndObject();
  std::printf("%s\n", j.str().c_str());
  return all_ok ? 0 : 1;
}

}  // namespace nydus::driver
