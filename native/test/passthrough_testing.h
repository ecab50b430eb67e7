// Test driver for the passthrough filesystem: builds FUSE requests with any caller uid/gid, runs
// them through the shared decoder (fuse/decode.h) and PassthroughFs::Handle over in-memory
// requests with scattered slices (fuse_testing.h MemRequest), and parses the replies.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fuse/decode.h"
#include "fuse_testing.h"
#include "passthrough/passthrough_fs.h"
#include "testing.h"

// Ends a test early that cannot run on this machine, saying why (never silently).
#define PT_SKIP(why)                                     \
  do {                                                   \
    std::fprintf(stderr, "    skipped part: %s\n", why); \
    return;                                              \
  } while (0)

namespace nydus::testing {

// Request bytes: fuse_in_header + args, with the caller's credentials.
class PtReq {
 public:
  PtReq(uint32_t opcode, uint64_t nodeid) {
    h_.opcode = opcode;
    h_.nodeid = nodeid;
    h_.pid = 4242;
  }
  template <typename T>
  PtReq& Arg(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    body_.insert(body_.end(), p, p + sizeof(T));
    return *this;
  }
  PtReq& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    body_.insert(body_.end(), b, b + n);
    return *this;
  }
  PtReq& Raw(const std::string& s) { return Raw(s.data(), s.size()); }
  PtReq& Name(const std::string& s) {
    Raw(s);
    body_.push_back(0);
    return *this;
  }
  PtReq& Len(uint32_t len) {
    len_ = len;
    return *this;
  }
  std::vector<uint8_t> Bytes(uint64_t unique, uint32_t uid, uint32_t gid) const {
    fuse_in_header h = h_;
    h.unique = unique;
    h.uid = uid;
    h.gid = gid;
    h.len = len_ != 0 ? len_ : static_cast<uint32_t>(sizeof(h) + body_.size());
    std::vector<uint8_t> out(sizeof(h) + body_.size());
    std::memcpy(out.data(), &h, sizeof(h));
    if (!body_.empty()) std::memcpy(out.data() + sizeof(h), body_.data(), body_.size());
    return out;
  }

 private:
  fuse_in_header h_{};
  std::vector<uint8_t> body_;
  uint32_t len_ = 0;
};

struct PtReply {
  int error = 0;  // positive errno, 0 for success
  std::vector<uint8_t> body;
  uint32_t written = 0;
  bool deferred = false;
  template <typename T>
  T As() const {
    T v{};
    if (!body.empty())
      std::memcpy(&v, body.data(), body.size() < sizeof(T) ? body.size() : sizeof(T));
    return v;
  }
};

class PtClient {
 public:
  explicit PtClient(const std::string& root,
                    passthrough::PassthroughOptions opts = passthrough::PassthroughOptions()) {
    int err = 0;
    owned = passthrough::PassthroughFs::Open(root, opts, &err);
    fs = owned.get();
    open_error = err;
  }
  // A second client (another thread's) on the same filesystem.
  explicit PtClient(passthrough::PassthroughFs* shared) : fs(shared) {}
  uint64_t root() const { return fs->root_id(); }

  // Sends one request; `split` cuts both buffers into slices of that many bytes.
  PtReply Send(const PtReq& r, size_t out_cap = 1 << 17, size_t split = 0) {
    MemRequest req(r.Bytes(++unique, uid, gid), out_cap, split, split);
    return Finish(req, fs->Handle(Decoded(req), req));
  }

  // The header as the session would have it after fuse::Decode.
  static fuse::DecodedRequest Decoded(const MemRequest& req) {
    fuse::DecodedRequest d;
    fuse::Decode(req, &d);  // opaque rows return early; the passthrough decodes its arguments
    return d;
  }

  static PtReply Finish(MemRequest& req, const passthrough::PassthroughFs::Outcome& o) {
    PtReply out;
    if (o.deferred) {
      out.deferred = true;
      return out;
    }
    req.Complete(o.written);
    return Parse(req);
  }

  static PtReply Parse(const MemRequest& req) {
    PtReply out;
    auto bytes = req.reply();
    out.written = static_cast<uint32_t>(bytes.size());
    if (bytes.size() >= sizeof(fuse_out_header)) {
      fuse_out_header h;
      std::memcpy(&h, bytes.data(), sizeof(h));
      out.error = -h.error;
      out.body.assign(bytes.begin() + sizeof(h), bytes.end());
    }
    return out;
  }

  // ---- op helpers (return the positive errno, 0 on success) ----
  int Lookup(uint64_t parent, const std::string& name, fuse_entry_out* e = nullptr) {
    auto r = Send(PtReq(FUSE_LOOKUP, parent).Name(name));
    if (e != nullptr) *e = r.As<fuse_entry_out>();
    return r.error;
  }
  void Forget(uint64_t node, uint64_t n) {
    fuse_forget_in f{n};
    auto r = Send(PtReq(FUSE_FORGET, node).Arg(f));
    NEXPECT_EQ(r.written, 0u);
  }
  int Getattr(uint64_t node, fuse_attr* a = nullptr) {
    fuse_getattr_in g{};
    auto r = Send(PtReq(FUSE_GETATTR, node).Arg(g));
    if (a != nullptr) *a = r.As<fuse_attr_out>().attr;
    return r.error;
  }
  int Mkdir(uint64_t parent, const std::string& name, uint32_t mode, fuse_entry_out* e = nullptr,
            uint32_t umask = 0) {
    fuse_mkdir_in m{mode, umask};
    auto r = Send(PtReq(FUSE_MKDIR, parent).Arg(m).Name(name));
    if (e != nullptr) *e = r.As<fuse_entry_out>();
    return r.error;
  }
  int Mknod(uint64_t parent, const std::string& name, uint32_t mode, uint32_t rdev,
            fuse_entry_out* e = nullptr) {
    fuse_mknod_in m{mode, rdev, 0, 0};
    auto r = Send(PtReq(FUSE_MKNOD, parent).Arg(m).Name(name));
    if (e != nullptr) *e = r.As<fuse_entry_out>();
    return r.error;
  }
  int Symlink(uint64_t parent, const std::string& name, const std::string& target,
              fuse_entry_out* e = nullptr) {
    auto r = Send(PtReq(FUSE_SYMLINK, parent).Name(name).Name(target));
    if (e != nullptr) *e = r.As<fuse_entry_out>();
    return r.error;
  }
  int Link(uint64_t old_node, uint64_t new_parent, const std::string& name,
           fuse_entry_out* e = nullptr) {
    fuse_link_in l{old_node};
    auto r = Send(PtReq(FUSE_LINK, new_parent).Arg(l).Name(name));
    if (e != nullptr) *e = r.As<fuse_entry_out>();
    return r.error;
  }
  int Unlink(uint64_t parent, const std::string& name) {
    return Send(PtReq(FUSE_UNLINK, parent).Name(name)).error;
  }
  int Rmdir(uint64_t parent, const std::string& name) {
    return Send(PtReq(FUSE_RMDIR, parent).Name(name)).error;
  }
  int Rename(uint64_t from, const std::string& a, uint64_t to, const std::string& b,
             uint32_t flags = 0) {
    if (flags == 0) {
      fuse_rename_in in{to};
      return Send(PtReq(FUSE_RENAME, from).Arg(in).Name(a).Name(b)).error;
    }
    fuse_rename2_in in{to, flags, 0};
    return Send(PtReq(FUSE_RENAME2, from).Arg(in).Name(a).Name(b)).error;
  }
  int Create(uint64_t parent, const std::string& name, uint32_t flags, uint32_t mode,
             fuse_entry_out* e = nullptr, uint64_t* fh = nullptr, uint32_t umask = 0) {
    fuse_create_in in{flags, mode, umask, 0};
    auto r = Send(PtReq(FUSE_CREATE, parent).Arg(in).Name(name));
    if (r.error == 0) {
      if (e != nullptr) std::memcpy(e, r.body.data(), sizeof(*e));
      fuse_open_out o;
      std::memcpy(&o, r.body.data() + sizeof(fuse_entry_out), sizeof(o));
      if (fh != nullptr) *fh = o.fh;
    }
    return r.error;
  }
  int Open(uint64_t node, uint32_t flags, uint64_t* fh) {
    fuse_open_in in{flags, 0};
    auto r = Send(PtReq(FUSE_OPEN, node).Arg(in));
    if (fh != nullptr) *fh = r.As<fuse_open_out>().fh;
    return r.error;
  }
  int Release(uint64_t node, uint64_t fh, uint32_t opcode = FUSE_RELEASE) {
    fuse_release_in in{fh, 0, 0, 0};
    return Send(PtReq(opcode, node).Arg(in)).error;
  }
  // WRITE with `split`-byte slices. Returns the errno; *written the count on success.
  int Write(uint64_t node, uint64_t fh, uint64_t off, const std::string& data,
            uint32_t* written = nullptr, uint32_t write_flags = 0, size_t split = 0) {
    fuse_write_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = static_cast<uint32_t>(data.size());
    in.write_flags = write_flags;
    auto r = Send(PtReq(FUSE_WRITE, node).Arg(in).Raw(data), 1 << 12, split);
    if (written != nullptr) *written = r.As<fuse_write_out>().size;
    return r.error;
  }
  int Read(uint64_t node, uint64_t fh, uint64_t off, uint32_t size, std::string* out,
           size_t split = 0) {
    fuse_read_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = size;
    auto r = Send(PtReq(FUSE_READ, node).Arg(in), sizeof(fuse_out_header) + size, split);
    if (out != nullptr) out->assign(r.body.begin(), r.body.end());
    return r.error;
  }
  int Setattr(uint64_t node, const fuse_setattr_in& s, fuse_attr* a = nullptr) {
    auto r = Send(PtReq(FUSE_SETATTR, node).Arg(s));
    if (a != nullptr) *a = r.As<fuse_attr_out>().attr;
    return r.error;
  }
  int Opendir(uint64_t node, uint64_t* fh) {
    fuse_open_in in{O_RDONLY, 0};
    auto r = Send(PtReq(FUSE_OPENDIR, node).Arg(in));
    if (fh != nullptr) *fh = r.As<fuse_open_out>().fh;
    return r.error;
  }

  std::unique_ptr<passthrough::PassthroughFs> owned;
  passthrough::PassthroughFs* fs = nullptr;
  int open_error = 0;
  uint64_t unique = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Host-side helpers for the tests.
inline bool WriteFileAt(const std::string& path, const std::string& data, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

inline std::string ReadFileAt(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<missing>";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Open descriptors of this process (the listing's own descriptor not counted).
inline size_t OpenFdCount() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  size_t n = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;
}

// A tmpfs of `size` mounted on a fresh directory for the test's lifetime.
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const char* size) {
    path_ = dir_.File("mnt");
    mkdir(path_.c_str(), 0755);
    std::string opts = std::string("size=") + size + ",mode=0755";
    mounted_ = mount("tmpfs", path_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_;
  bool mounted_ = false;
};

// True when this process may create device nodes (root with CAP_MKNOD: not in every container).
inline bool CanMakeDevices(const std::string& dir) {
  const std::string probe = dir + "/.mknod-probe";
  if (::mknod(probe.c_str(), S_IFCHR | 0600, makedev(1, 3)) != 0) return false;
  ::unlink(probe.c_str());
  return true;
}

// Waits up to ~5 s for a deferred request to complete.
inline bool WaitCompleted(const MemRequest& req, int count = 1) {
  for (int i = 0; i < 5000; ++i) {
    if (req.completions() >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace nydus::testing
