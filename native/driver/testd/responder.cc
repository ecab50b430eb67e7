#include "driver/testd/responder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <random>

namespace nydus::driver {
namespace {

constexpr uint32_t kMaxWrite = 1 << 20;
constexpr uint16_t kMaxPages = 256;
constexpr size_t kMaxArgs = 8192;  // header + name + fixed args of any read-only op
constexpr uint32_t kOfferedFlags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
                                   FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS;
constexpr uint64_t kTimeoutSec = 1;

}  // namespace

// Writes one reply into the request's writable slices and completes it, exactly once.
class TestResponder::Reply {
 public:
  Reply(transport::FuseRequest* r, uint64_t unique) : r_(r), unique_(unique) {}
  ~Reply() {
    if (!done_) Error(-EIO);
  }
  size_t payload_capacity() const { return r_->out_bytes() > 16 ? r_->out_bytes() - 16 : 0; }
  bool can_reply() const { return r_->out_bytes() >= sizeof(fuse_out_header); }

  void Error(int err) {
    if (done_) return;
    done_ = true;
    if (!can_reply()) {
      r_->Complete(0);
      return;
    }
    fuse_out_header h{sizeof(h), err, unique_};
    Write(0, &h, sizeof(h));
    r_->Complete(sizeof(h));
  }
  void Ok(const void* p, size_t n) { Ok2(p, n, nullptr, 0); }
  void Ok2(const void* a, size_t an, const void* b, size_t bn) {
    if (done_) return;
    if (16 + an + bn > r_->out_bytes()) {
      // The guest offered less room than the reply needs: an error fits in 16 bytes.
      Error(-EIO);
      return;
    }
    done_ = true;
    fuse_out_header h{static_cast<uint32_t>(16 + an + bn), 0, unique_};
    Write(0, &h, sizeof(h));
    if (an > 0) Write(16, a, an);
    if (bn > 0) Write(16 + an, b, bn);
    r_->Complete(h.len);
  }
  void NoReply() {
    done_ = true;
    r_->Complete(0);
  }

 private:
  void Write(size_t off, const void* src, size_t n) {
    const uint8_t* s = static_cast<const uint8_t*>(src);
    for (const auto& sl : r_->out()) {
      if (n == 0) break;
      if (off >= sl.len) {
        off -= sl.len;
        continue;
      }
      size_t take = std::min(sl.len - off, n);
      memcpy(sl.base + off, s, take);
      s += take;
      n -= take;
      off = 0;
    }
  }

  transport::FuseRequest* r_;
  uint64_t unique_;
  bool done_ = false;
};

TestResponder::TestResponder() {
  struct stat st = {};
  st.st_mode = S_IFDIR | 0755;
  st.st_nlink = 2;
  st.st_ino = 1;
  AddNode(0, "", st);
}

uint64_t TestResponder::AddNode(uint64_t parent, const std::string& name, const struct stat& st) {
  auto n = std::make_unique<Node>();
  n->name = name;
  n->parent = parent;
  n->st = st;
  nodes_.push_back(std::move(n));
  uint64_t id = nodes_.size();
  if (parent != 0) {
    auto& ch = nodes_[parent - 1]->children;
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(name, uint64_t{0}));
    ch.insert(it, {name, id});
  }
  return id;
}

int TestResponder::LoadDir(const std::string& dir, std::string* error) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = dir + ": not a directory";
    return -ENOTDIR;
  }
  nodes_[0]->st = st;
  return LoadInto(1, dir, error);
}

int TestResponder::LoadInto(uint64_t node, const std::string& path, std::string* error) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    *error = path + ": " + strerror(errno);
    return -errno;
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& name : names) {
    std::string p = path + "/" + name;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    uint64_t id = AddNode(node, name, st);
    Node& n = *nodes_[id - 1];
    char buf[65536];
    ssize_t len = ::llistxattr(p.c_str(), buf, sizeof(buf));
    for (ssize_t off = 0; len > 0 && off < len;
         off += static_cast<ssize_t>(strlen(buf + off)) + 1) {
      char value[4096];
      ssize_t vl = ::lgetxattr(p.c_str(), buf + off, value, sizeof(value));
      if (vl >= 0) n.xattrs.push_back({buf + off, std::string(value, static_cast<size_t>(vl))});
    }
    if (S_ISDIR(st.st_mode)) {
      int rc = LoadInto(id, p, error);
      if (rc != 0) return rc;
    } else if (S_ISLNK(st.st_mode)) {
      ssize_t tl = ::readlink(p.c_str(), buf, sizeof(buf));
      if (tl > 0) n.target.assign(buf, static_cast<size_t>(tl));
    } else if (S_ISREG(st.st_mode)) {
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        *error = p + ": " + strerror(errno);
        return -errno;
      }
      n.data.resize(static_cast<size_t>(st.st_size));
      size_t got = 0;
      while (got < n.data.size()) {
        ssize_t r = ::pread(fd, n.data.data() + got, n.data.size() - got, static_cast<off_t>(got));
        if (r <= 0) break;
        got += static_cast<size_t>(r);
      }
      ::close(fd);
      n.data.resize(got);
    }
  }
  return 0;
}

void TestResponder::AddSynthetic(const std::string& name, uint64_t size) {
  struct stat st = {};
  st.st_mode = S_IFREG | 0444;
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(size);
  st.st_ino = 1000000 + nodes_.size();
  st.st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
  uint64_t id = AddNode(1, name, st);
  std::string& data = nodes_[id - 1]->data;
  data.resize(size);
  std::mt19937_64 rng(size);
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    memcpy(&data[i], &v, 8);
  }
}

void TestResponder::Seal() {
  nlookup_size_ = nodes_.size();
  nlookup_ = std::make_unique<std::atomic<int64_t>[]>(nlookup_size_);
  for (size_t i = 0; i < nlookup_size_; ++i) nlookup_[i].store(0);
}

const TestResponder::Node* TestResponder::Get(uint64_t nodeid) const {
  return nodeid >= 1 && nodeid <= nodes_.size() ? nodes_[nodeid - 1].get() : nullptr;
}

void TestResponder::FillAttr(uint64_t nodeid, fuse_attr* a) const {
  const struct stat& st = nodes_[nodeid - 1]->st;
  *a = fuse_attr{};
  a->ino = nodeid == 1 ? 1 : static_cast<uint64_t>(st.st_ino);
  a->size = static_cast<uint64_t>(st.st_size);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->blksize = 4096;
}

void TestResponder::FillEntry(uint64_t nodeid, fuse_entry_out* e) {
  *e = fuse_entry_out{};
  e->nodeid = nodeid;
  e->entry_valid = kTimeoutSec;
  e->attr_valid = kTimeoutSec;
  FillAttr(nodeid, &e->attr);
  if (nodeid <= nlookup_size_) nlookup_[nodeid - 1].fetch_add(1, std::memory_order_relaxed);
}

void TestResponder::OnSessionReset() {
  initialized_.store(false);
  for (size_t i = 0; i < nlookup_size_; ++i) nlookup_[i].store(0);
}

void TestResponder::OnRequest(transport::FuseRequest* req) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  // Private copy of header and arguments: guest memory can change under us (TOCTOU).
  thread_local uint8_t buf[kMaxArgs];
  size_t n = 0;
  for (const auto& s : req->in()) {
    size_t take = std::min(s.len, sizeof(buf) - n);
    memcpy(buf + n, s.base, take);
    n += take;
    if (n == sizeof(buf)) break;
  }
  if (n < sizeof(fuse_in_header)) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    req->Complete(0);  // not even a header: nobody to answer
    return;
  }
  fuse_in_header h;
  memcpy(&h, buf, sizeof(h));
  Reply r(req, h.unique);
  if (h.len < sizeof(h) || h.len > req->in_bytes() || h.len > sizeof(buf)) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    r.Error(-EIO);
    return;
  }
  if (h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET || h.opcode == FUSE_INTERRUPT) {
    if (h.opcode == FUSE_FORGET && h.len >= sizeof(h) + sizeof(fuse_forget_in)) {
      fuse_forget_in f;
      memcpy(&f, buf + sizeof(h), sizeof(f));
      DoForget(h.nodeid, f.nlookup);
    } else if (h.opcode == FUSE_BATCH_FORGET && h.len >= sizeof(h) + 8) {
      fuse_batch_forget_in b;
      memcpy(&b, buf + sizeof(h), sizeof(b));
      size_t room = (h.len - sizeof(h) - sizeof(b)) / sizeof(fuse_forget_one);
      for (size_t i = 0; i < std::min<size_t>(b.count, room); ++i) {
        fuse_forget_one one;
        memcpy(&one, buf + sizeof(h) + sizeof(b) + i * sizeof(one), sizeof(one));
        DoForget(one.nodeid, one.nlookup);
      }
    }
    r.NoReply();
    return;
  }
  if (h.opcode != FUSE_INIT && !initialized_.load()) {
    r.Error(-EIO);  // requests before INIT fail (C virtiofsd does the same)
    return;
  }
  Dispatch(h, buf + sizeof(h), h.len - sizeof(h), r);
}

void TestResponder::DoForget(uint64_t nodeid, uint64_t n) {
  if (nodeid < 2 || nodeid > nlookup_size_) return;  // root and unknown ids: ignored
  auto& c = nlookup_[nodeid - 1];
  int64_t cur = c.load(std::memory_order_relaxed);
  int64_t next;
  do {
    next = n > static_cast<uint64_t>(std::max<int64_t>(cur, 0)) ? 0 : cur - static_cast<int64_t>(n);
  } while (!c.compare_exchange_weak(cur, next, std::memory_order_relaxed));
}

void TestResponder::Dispatch(const fuse_in_header& h, const uint8_t* args, size_t len, Reply& r) {
  const Node* node = Get(h.nodeid);
  auto need = [&](size_t n) {
    if (len >= n) return true;
    r.Error(-EINVAL);
    return false;
  };
  switch (h.opcode) {
    case FUSE_INIT:
      return DoInit(args, len, r);
    case FUSE_DESTROY:
      OnSessionReset();
      return r.Ok(nullptr, 0);
    case FUSE_LOOKUP:
      return DoLookup(h, args, len, r);
    case FUSE_GETATTR: {
      if (node == nullptr) return r.Error(-ENOENT);
      fuse_attr_out out{};
      out.attr_valid = kTimeoutSec;
      FillAttr(h.nodeid, &out.attr);
      return r.Ok(&out, sizeof(out));
    }
    case FUSE_READLINK:
      if (node == nullptr) return r.Error(-ENOENT);
      if (!S_ISLNK(node->st.st_mode)) return r.Error(-EINVAL);
      return r.Ok(node->target.data(), std::min(node->target.size(), r.payload_capacity()));
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
      if (!need(sizeof(fuse_open_in))) return;
      if (node == nullptr) return r.Error(-ENOENT);
      fuse_open_in in;
      memcpy(&in, args, sizeof(in));
      bool dir = h.opcode == FUSE_OPENDIR;
      if (dir != S_ISDIR(node->st.st_mode)) return r.Error(dir ? -ENOTDIR : -EISDIR);
      if ((in.flags & O_ACCMODE) != O_RDONLY || (in.flags & O_TRUNC) != 0) return r.Error(-EROFS);
      fuse_open_out out{};
      out.fh = h.nodeid;
      out.open_flags = dir ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : FOPEN_KEEP_CACHE;
      return r.Ok(&out, sizeof(out));
    }
    case FUSE_READ:
      return DoRead(h, args, len, r);
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      return DoReaddir(h, args, len, h.opcode == FUSE_READDIRPLUS, r);
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
    case FUSE_FLUSH:
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_SYNCFS:
      return r.Ok(nullptr, 0);
    case FUSE_STATFS: {
      fuse_statfs_out out{};
      out.st.blocks = 1 << 20;
      out.st.bsize = 4096;
      out.st.frsize = 4096;
      out.st.files = nodes_.size();
      out.st.namelen = 255;
      return r.Ok(&out, sizeof(out));
    }
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
      return DoXattr(h, args, len, h.opcode == FUSE_LISTXATTR, r);
    case FUSE_SETATTR:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_SYMLINK:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_LINK:
    case FUSE_CREATE:
    case FUSE_WRITE:
    case FUSE_SETXATTR:
    case FUSE_REMOVEXATTR:
    case FUSE_FALLOCATE:
      return r.Error(-EROFS);
    default:
      return r.Error(-ENOSYS);
  }
}

void TestResponder::DoInit(const uint8_t* args, size_t len, Reply& r) {
  if (len < 8) return r.Error(-EINVAL);
  fuse_init_in in{};
  memcpy(&in, args, std::min(len, sizeof(in)));
  if (in.major != FUSE_KERNEL_VERSION) return r.Error(-EPROTO);
  // INIT after INIT (a rebooted guest) is an implicit DESTROY.
  OnSessionReset();
  inits_.fetch_add(1, std::memory_order_relaxed);
  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = std::min<uint32_t>(in.minor, FUSE_KERNEL_MINOR_VERSION);
  out.max_readahead = in.max_readahead;
  out.flags = len >= 16 ? (in.flags & kOfferedFlags) : 0;
  out.max_background = 64;
  out.congestion_threshold = 48;
  out.max_write = kMaxWrite;
  out.time_gran = 1;
  out.max_pages = kMaxPages;
  initialized_.store(true);
  // Compat: older minors take the 24-byte reply (reference §4.3).
  r.Ok(&out, out.minor < 23 ? 24 : sizeof(out));
}

void TestResponder::DoLookup(const fuse_in_header& h, const uint8_t* args, size_t len, Reply& r) {
  const Node* dir = Get(h.nodeid);
  if (dir == nullptr) return r.Error(-ENOENT);
  if (!S_ISDIR(dir->st.st_mode)) return r.Error(-ENOTDIR);
  const void* nul = memchr(args, '\0', len);
  if (nul == nullptr) return r.Error(-EINVAL);
  std::string name(reinterpret_cast<const char*>(args));
  if (name.empty() || name.size() > 1024) return r.Error(-EINVAL);
  auto it = std::lower_bound(dir->children.begin(), dir->children.end(),
                             std::make_pair(name, uint64_t{0}));
  if (it == dir->children.end() || it->first != name) return r.Error(-ENOENT);
  fuse_entry_out e;
  FillEntry(it->second, &e);
  r.Ok(&e, sizeof(e));
}

void TestResponder::DoRead(const fuse_in_header& h, const uint8_t* args, size_t len, Reply& r) {
  if (len < sizeof(fuse_read_in)) return r.Error(-EINVAL);
  fuse_read_in in;
  memcpy(&in, args, sizeof(in));
  const Node* n = Get(h.nodeid);
  if (n == nullptr) return r.Error(-ENOENT);
  if (!S_ISREG(n->st.st_mode)) return r.Error(-EISDIR);
  uint64_t size = std::min<uint64_t>({in.size, kMaxWrite, r.payload_capacity()});
  if (in.offset >= n->data.size()) return r.Ok(nullptr, 0);
  size = std::min<uint64_t>(size, n->data.size() - in.offset);
  r.Ok(n->data.data() + in.offset, size);
}

void TestResponder::DoReaddir(const fuse_in_header& h, const uint8_t* args, size_t len, bool plus,
                              Reply& r) {
  if (len < sizeof(fuse_read_in)) return r.Error(-EINVAL);
  fuse_read_in in;
  memcpy(&in, args, sizeof(in));
  const Node* dir = Get(h.nodeid);
  if (dir == nullptr) return r.Error(-ENOENT);
  if (!S_ISDIR(dir->st.st_mode)) return r.Error(-ENOTDIR);
  const size_t limit = std::min<size_t>(in.size, r.payload_capacity());
  thread_local std::vector<uint8_t> out;
  out.clear();
  // Position i: 0 ".", 1 "..", 2.. children; the cookie of an entry is its position + 1.
  const size_t total = 2 + dir->children.size();
  for (size_t i = in.offset; i < total; ++i) {
    std::string name = i == 0 ? "." : i == 1 ? ".." : dir->children[i - 2].first;
    uint64_t child = i >= 2 ? dir->children[i - 2].second : 0;
    const size_t head = plus ? sizeof(fuse_direntplus) : sizeof(fuse_dirent);
    const size_t rec = DirentAlign(head + name.size());
    if (out.size() + rec > limit) break;  // never a partial record
    size_t at = out.size();
    out.resize(at + rec, 0);
    fuse_dirent d{};
    d.off = i + 1;
    d.namelen = static_cast<uint32_t>(name.size());
    const uint64_t id = child != 0 ? child : (i == 0 ? h.nodeid : (dir->parent ? dir->parent : 1));
    d.ino = id == 1 ? 1 : static_cast<uint64_t>(nodes_[id - 1]->st.st_ino);
    d.type = (nodes_[id - 1]->st.st_mode & S_IFMT) >> 12;
    if (plus) {
      fuse_entry_out e{};
      if (child != 0) {
        FillEntry(child, &e);  // counts a lookup, as the kernel expects
      } else {
        e.attr.ino = d.ino;  // "." and "..": no entry information
        e.attr.mode = nodes_[id - 1]->st.st_mode;
      }
      memcpy(out.data() + at, &e, sizeof(e));
      memcpy(out.data() + at + sizeof(e), &d, sizeof(d));
    } else {
      memcpy(out.data() + at, &d, sizeof(d));
    }
    memcpy(out.data() + at + head, name.data(), name.size());
  }
  r.Ok(out.data(), out.size());
}

void TestResponder::DoXattr(const fuse_in_header& h, const uint8_t* args, size_t len, bool list,
                            Reply& r) {
  if (len < sizeof(fuse_getxattr_in)) return r.Error(-EINVAL);
  fuse_getxattr_in in;
  memcpy(&in, args, sizeof(in));
  const Node* n = Get(h.nodeid);
  if (n == nullptr) return r.Error(-ENOENT);
  std::string value;
  if (list) {
    for (const auto& [k, v] : n->xattrs) value += k + '\0';
  } else {
    const char* name = reinterpret_cast<const char*>(args + sizeof(in));
    if (memchr(name, '\0', len - sizeof(in)) == nullptr) return r.Error(-EINVAL);
    auto it = std::find_if(n->xattrs.begin(), n->xattrs.end(),
                           [&](const auto& kv) { return kv.first == name; });
    if (it == n->xattrs.end()) return r.Error(-ENODATA);
    value = it->second;
  }
  if (in.size == 0) {
    fuse_getxattr_out out{};
    out.size = static_cast<uint32_t>(value.size());
    return r.Ok(&out, sizeof(out));
  }
  if (value.size() > in.size) return r.Error(-ERANGE);
  r.Ok(value.data(), value.size());
}

}  // namespace nydus::driver
