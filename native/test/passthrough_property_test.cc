// PassthroughFs properties:
//  - differential: random sequences of mutating ops give the same errno through the filesystem
//    as the same syscalls made directly on a mirror directory, and the same tree;
//  - lookup counts: forgetting every reference handed out leaves only the root;
//  - concurrency: threads hammering one filesystem (run under TSan by `npm run test:asan --
//    --tsan`) leave consistent tables;
//  - garbage: random request bytes always get exactly one well-formed reply and never a crash.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <random>
#include <thread>

#include "passthrough/pt_creds.h"
#include "passthrough_testing.h"

using nydus::testing::MemRequest;
using nydus::testing::PtClient;
using nydus::testing::PtReq;
using nydus::testing::ReadFileAt;
using nydus::testing::SmallTmpfs;
using nydus::testing::TempDir;

namespace {

const char* const kParents[] = {"", "d1", "d1/d2", "d3"};
const char* const kNames[] = {"a", "b", "d1", "d2", "d3", "l"};

std::vector<std::string> Split(const std::string& p) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string::npos) slash = p.size();
    out.push_back(p.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// The mirror side: parents resolved one component at a time without following symlinks, as
// the guest kernel resolves paths through LOOKUP.
int HostParent(const std::string& root, const std::string& parent, int* out) {
  int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  for (const auto& comp : Split(parent)) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
      close(fd);
      return ENOTDIR;
    }
    int next = openat(fd, comp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(fd);
    if (next < 0) return err;
    fd = next;
  }
  *out = fd;
  return 0;
}

// The filesystem side: LOOKUP per component; every reference taken is remembered.
struct FsWalker {
  PtClient& c;
  std::map<uint64_t, uint64_t>& refs;
  int Parent(const std::string& parent, uint64_t* node) {
    uint64_t n = c.root();
    for (const auto& comp : Split(parent)) {
      fuse_entry_out e{};
      int err = c.Lookup(n, comp, &e);
      if (err != 0) return err;
      ++refs[e.nodeid];
      n = e.nodeid;
    }
    *node = n;
    return 0;
  }
  void Took(int err, const fuse_entry_out& e) {
    if (err == 0) ++refs[e.nodeid];
  }
};

void CompareTrees(const std::string& a, const std::string& b, const std::string& rel) {
  std::map<std::string, struct stat> ea, eb;
  for (auto [root, out] : {std::pair{a, &ea}, std::pair{b, &eb}}) {
    DIR* d = opendir((root + rel).c_str());
    if (d == nullptr) continue;
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      struct stat st;
      lstat((root + rel + "/" + n).c_str(), &st);
      (*out)[n] = st;
    }
    closedir(d);
  }
  NEXPECT_EQ(ea.size(), eb.size());
  for (auto& [name, sa] : ea) {
    auto it = eb.find(name);
    NEXPECT_TRUE(it != eb.end());
    if (it == eb.end()) continue;
    const struct stat& sb = it->second;
    const std::string path = rel + "/" + name;
    NEXPECT_EQ(sa.st_mode, sb.st_mode);
    NEXPECT_EQ(sa.st_nlink, sb.st_nlink);
    NEXPECT_EQ(sa.st_uid, sb.st_uid);
    NEXPECT_EQ(sa.st_gid, sb.st_gid);
    if (S_ISREG(sa.st_mode)) {
      NEXPECT_EQ(sa.st_size, sb.st_size);
      NEXPECT_TRUE(ReadFileAt(a + path) == ReadFileAt(b + path));
    } else if (S_ISLNK(sa.st_mode)) {
      char ta[256] = {}, tb[256] = {};
      readlink((a + path).c_str(), ta, sizeof(ta) - 1);
      readlink((b + path).c_str(), tb, sizeof(tb) - 1);
      NEXPECT_EQ(std::string(ta), std::string(tb));
    } else if (S_ISDIR(sa.st_mode)) {
      CompareTrees(a, b, path);
    }
  }
}

// Both trees start with the same root-owned entries (so an unprivileged caller meets
// permission errors) and get the same random ops, the mirror's as direct syscalls made with the
// same credentials on this thread.
void RunDifferential(unsigned seed, int ops, uint32_t uid) {
  TempDir tmp;
  const std::string A = tmp.File("fs"), B = tmp.File("mirror");
  chmod(tmp.path().c_str(), 0755);
  for (const auto& root : {A, B}) {
    mkdir(root.c_str(), 0777);
    chmod(root.c_str(), 0777);
    mkdir((root + "/d1").c_str(), 0755);
    nydus::testing::WriteFileAt(root + "/d1/a", "root's", 0644);
    mkdir((root + "/d3").c_str(), 0777);
    chmod((root + "/d3").c_str(), 01777);  // sticky: only owners may remove or rename
  }
  nydus::passthrough::SetThreadUmask(0);
  PtClient c(A);
  c.uid = uid;
  c.gid = uid;
  std::map<uint64_t, uint64_t> refs;
  FsWalker w{c, refs};
  std::mt19937 rng(seed);
  auto pick = [&](auto& arr) { return std::string(arr[rng() % std::size(arr)]); };
  for (int i = 0; i < ops; ++i) {
    const int op = static_cast<int>(rng() % 8);
    const std::string p1 = pick(kParents), n1 = pick(kNames);
    const std::string p2 = pick(kParents), n2 = pick(kNames);
    int hfd = -1, hfd2 = -1;
    uint64_t node = 0, node2 = 0;
    // The mirror's syscalls run as the caller, exactly like the filesystem's.
    std::optional<nydus::passthrough::CallerScope> as_caller;
    as_caller.emplace(uid, uid, true);
    int herr = HostParent(B, p1, &hfd);
    as_caller.reset();
    int ferr = w.Parent(p1, &node);
    NEXPECT_EQ(ferr, herr);
    const bool two = op == 4 || op == 5;
    int herr2 = 0, ferr2 = 0;
    if (two) {
      as_caller.emplace(uid, uid, true);
      herr2 = HostParent(B, p2, &hfd2);
      as_caller.reset();
      ferr2 = w.Parent(p2, &node2);
      NEXPECT_EQ(ferr2, herr2);
    }
    if (herr != 0 || ferr != 0 || herr2 != 0 || ferr2 != 0) {
      if (hfd >= 0) close(hfd);
      if (hfd2 >= 0) close(hfd2);
      continue;
    }
    auto host = [&](int rc) {
      int err = rc == 0 ? 0 : errno;
      as_caller.reset();
      return err;
    };
    as_caller.emplace(uid, uid, true);
    int want = 0, got = 0;
    fuse_entry_out e{};
    switch (op) {
      case 0: {
        const uint32_t mode = rng() % 2 ? 0755 : 0700;
        want = host(mkdirat(hfd, n1.c_str(), mode));
        got = c.Mkdir(node, n1, mode, &e);
        w.Took(got, e);
        break;
      }
      case 1: {
        const uint32_t flags[] = {O_RDWR, O_RDWR | O_EXCL, O_WRONLY | O_TRUNC};
        const uint32_t f = flags[rng() % 3];
        const std::string data(rng() % 3000, static_cast<char>('a' + rng() % 26));
        const uint64_t off = rng() % 5000;
        int fd =
            openat(hfd, n1.c_str(), static_cast<int>(f) | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        want = fd < 0 ? errno : 0;
        if (fd >= 0) {
          pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
          close(fd);
        }
        uint64_t fh = 0;
        got = c.Create(node, n1, f, 0644, &e, &fh);
        w.Took(got, e);
        if (got == 0) {
          NEXPECT_EQ(c.Write(e.nodeid, fh, off, data), 0);
          NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
        }
        break;
      }
      case 2:
        want = host(unlinkat(hfd, n1.c_str(), 0));
        got = c.Unlink(node, n1);
        break;
      case 3:
        want = host(unlinkat(hfd, n1.c_str(), AT_REMOVEDIR));
        got = c.Rmdir(node, n1);
        break;
      case 4: {
        const uint32_t flags[] = {0, RENAME_NOREPLACE, RENAME_EXCHANGE};
        const uint32_t f = flags[rng() % 3];
        want = host(renameat2(hfd, n1.c_str(), hfd2, n2.c_str(), f));
        got = c.Rename(node, n1, node2, n2, f);
        break;
      }
      case 5: {
        want = host(linkat(hfd, n1.c_str(), hfd2, n2.c_str(), 0));
        fuse_entry_out src{};
        int le = c.Lookup(node, n1, &src);
        w.Took(le, src);
        got = le != 0 ? le : c.Link(src.nodeid, node2, n2, &e);
        if (le == 0) w.Took(got, e);
        break;
      }
      case 6: {
        const char* targets[] = {"a", "../x", "d1"};
        const char* t = targets[rng() % 3];
        want = host(symlinkat(t, hfd, n1.c_str()));
        got = c.Symlink(node, n1, t, &e);
        w.Took(got, e);
        break;
      }
      case 7: {
        // Truncate or chmod of whatever the name is, unless it is a symlink (the host's path
        // calls would follow it; the guest kernel never sends SETATTR for a link's target).
        struct stat st;
        if (fstatat(hfd, n1.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
          as_caller.reset();
          break;
        }
        fuse_setattr_in s{};
        const bool trunc = rng() % 2 == 0;
        if (trunc) {
          s.valid = FATTR_SIZE;
          s.size = rng() % 4000;
          int fd = openat(hfd, n1.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
          want = host(fd < 0 ? -1 : ftruncate(fd, static_cast<off_t>(s.size)));
          if (fd >= 0) close(fd);
        } else {
          s.valid = FATTR_MODE;
          s.mode = rng() % 2 ? 0600 : 0755;
          want = host(fchmodat(hfd, n1.c_str(), s.mode, 0));
        }
        int le = c.Lookup(node, n1, &e);
        w.Took(le, e);
        got = le != 0 ? le : c.Setattr(e.nodeid, s);
        break;
      }
    }
    if (got != want) {
      std::fprintf(stderr, "    seed %u op %d #%d %s/%s -> %s/%s: fs %d host %d\n", seed, op, i,
                   p1.c_str(), n1.c_str(), p2.c_str(), n2.c_str(), got, want);
    }
    NEXPECT_EQ(got, want);
    close(hfd);
    if (hfd2 >= 0) close(hfd2);
  }
  CompareTrees(A, B, "");
  for (auto& [node, n] : refs) c.Forget(node, n);
  NEXPECT_EQ(c.fs->Stats().inodes, 1u);
}

}  // namespace

NTEST(PassthroughProperty, RandomOpsMatchTheHostErrnoForErrno) {
  for (unsigned seed = 1; seed <= 4; ++seed) RunDifferential(seed, 250, 0);
}

NTEST(PassthroughProperty, RandomOpsAsAnUnprivilegedCallerMatchTheHost) {
  if (geteuid() != 0) PT_SKIP("needs root to act as uid 1000");
  for (unsigned seed = 11; seed <= 14; ++seed) RunDifferential(seed, 250, 1000);
}

NTEST(PassthroughProperty, ConcurrentThreadsKeepTablesConsistent) {
  TempDir dir;
  NASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);
  PtClient owner(dir.path());
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      PtClient c(owner.fs);
      c.unique = static_cast<uint64_t>(t) << 32;
      c.uid = t % 2 == 0 ? 0 : 1000;  // half the threads switch credentials all the time
      c.gid = c.uid;
      const std::string mine = "t" + std::to_string(t);
      fuse_entry_out d{};
      if (c.Mkdir(c.root(), mine, 0777, &d) != 0) ++failures;
      for (int i = 0; i < 60; ++i) {
        const std::string name = "f" + std::to_string(i % 7);
        fuse_entry_out e{};
        uint64_t fh = 0;
        if (c.Create(d.nodeid, name, O_RDWR | O_TRUNC, 0644, &e, &fh) != 0) ++failures;
        if (c.Write(e.nodeid, fh, 0, mine + name) != 0) ++failures;
        std::string got;
        if (c.Read(e.nodeid, fh, 0, 64, &got) != 0 || got != mine + name) ++failures;
        c.Release(e.nodeid, fh);
        // Everyone looks up and forgets the same shared entries too.
        fuse_entry_out s{};
        if (c.Lookup(c.root(), "t0", &s) == 0) c.Forget(s.nodeid, 1);
        uint64_t dh = 0;
        if (c.Opendir(c.root(), &dh) == 0) {
          fuse_read_in in{dh, 0, 4096, 0, 0, 0, 0};
          auto r = c.Send(PtReq(FUSE_READDIRPLUS, c.root()).Arg(in));
          // Forget what READDIRPLUS handed out.
          for (size_t pos = 0; pos + FUSE_NAME_OFFSET_DIRENTPLUS <= r.body.size();) {
            fuse_entry_out de;
            fuse_dirent dd;
            std::memcpy(&de, r.body.data() + pos, sizeof(de));
            std::memcpy(&dd, r.body.data() + pos + sizeof(de), FUSE_NAME_OFFSET);
            if (de.nodeid != 0) c.Forget(de.nodeid, 1);
            pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + dd.namelen);
          }
          c.Release(c.root(), dh, FUSE_RELEASEDIR);
        }
        if (i % 3 == 0) {
          c.Rename(d.nodeid, name, d.nodeid, name + ".r");
          c.Unlink(d.nodeid, name + ".r");
        }
        c.Forget(e.nodeid, 1);
      }
      c.Forget(d.nodeid, 1);
    });
  }
  for (auto& th : threads) th.join();
  NEXPECT_EQ(failures.load(), 0);
  auto s = owner.fs->Stats();
  NEXPECT_EQ(s.handles, 0u);
  NEXPECT_EQ(s.inodes, 1u);
}

NTEST(PassthroughProperty, GarbageRequestsGetOneWellFormedReply) {
  // On a small tmpfs when possible, so that random sizes and offsets cannot fill a real disk.
  SmallTmpfs small("4m");
  TempDir fallback;
  const std::string root = small.mounted() ? small.path() : fallback.path();
  mkdir((root + "/d").c_str(), 0755);
  nydus::testing::WriteFileAt(root + "/f", "file");
  PtClient c(root);
  std::vector<uint64_t> nodes = {c.root()};
  for (const char* n : {"d", "f"}) {
    fuse_entry_out e{};
    if (c.Lookup(c.root(), n, &e) == 0) nodes.push_back(e.nodeid);
  }
  std::mt19937 rng(12345);
  std::vector<std::unique_ptr<MemRequest>> deferred;
  for (int i = 0; i < 4000; ++i) {
    uint32_t opcode = 1 + rng() % 52;
    if (!small.mounted() && (opcode == FUSE_FALLOCATE || opcode == FUSE_WRITE)) continue;
    std::vector<uint8_t> body(rng() % 200);
    for (auto& b : body) b = static_cast<uint8_t>(rng() % 4 == 0 ? 0 : 'a' + rng() % 26);
    // Sometimes valid-looking small numbers in the fixed struct.
    for (size_t k = 0; k + 8 <= body.size() && k < 48; k += 8) {
      if (rng() % 2 == 0) {
        uint64_t v = rng() % 4 == 0 ? nodes[rng() % nodes.size()] : rng() % 4096;
        std::memcpy(body.data() + k, &v, 8);
      }
    }
    PtReq r(opcode, rng() % 8 == 0 ? rng() : nodes[rng() % nodes.size()]);
    r.Raw(body.data(), body.size());
    auto bytes = r.Bytes(static_cast<uint64_t>(i + 1), rng() % 3 == 0 ? 1000 : 0, 0);
    auto req =
        std::make_unique<MemRequest>(bytes, 16 + rng() % 8192, 1 + rng() % 64, 1 + rng() % 64);
    auto o = c.fs->Handle(PtClient::Decoded(*req), *req);
    if (o.deferred) {
      deferred.push_back(std::move(req));
      continue;
    }
    if (o.written != 0) {
      NASSERT_GE(o.written, 16u);
      fuse_out_header h = req->header();
      NEXPECT_EQ(h.len, o.written);
      NEXPECT_EQ(h.unique, static_cast<uint64_t>(i + 1));
      NEXPECT_TRUE(h.error <= 0 && h.error >= -511);
      NEXPECT_EQ(o.error, h.error != 0);
    } else {
      NEXPECT_TRUE(opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET);
    }
  }
  c.fs->Reset();
  for (auto& req : deferred) {
    NEXPECT_TRUE(nydus::testing::WaitCompleted(*req));
    NEXPECT_EQ(req->completions(), 1);
  }
  NEXPECT_EQ(c.fs->Stats().inodes, 1u);
}
