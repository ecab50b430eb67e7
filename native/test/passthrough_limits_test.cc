// PassthroughFs under pressure and with locks: a full disk (ENOSPC, then business as usual),
// the descriptor limit (EMFILE, nothing leaks), and POSIX / flock locks including a SETLKW that
// waits without blocking the caller.
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "passthrough_testing.h"

using nydus::testing::MemRequest;
using nydus::testing::PtClient;
using nydus::testing::PtReq;
using nydus::testing::ReadFileAt;
using nydus::testing::SmallTmpfs;
using nydus::testing::TempDir;
using nydus::testing::WaitCompleted;
using nydus::testing::WriteFileAt;

namespace {

fuse_lk_in Lock(uint64_t fh, uint64_t owner, uint32_t type, uint64_t start, uint64_t end,
                bool flock = false) {
  fuse_lk_in in{};
  in.fh = fh;
  in.owner = owner;
  in.lk.start = start;
  in.lk.end = end;
  in.lk.type = type;
  in.lk_flags = flock ? FUSE_LK_FLOCK : 0;
  return in;
}

constexpr uint64_t kEof = 0x7fffffffffffffffull;

}  // namespace

NTEST(PassthroughLimits, FullDiskReportsEnospcAndKeepsServing) {
  SmallTmpfs fs("256k");
  if (!fs.mounted()) PT_SKIP("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
  PtClient c(fs.path());
  fuse_entry_out e{};
  uint64_t fh = 0;
  NASSERT_EQ(c.Create(c.root(), "big", O_RDWR, 0644, &e, &fh), 0);
  const std::string chunk(64 * 1024, 'z');
  int err = 0;
  uint64_t off = 0;
  for (int i = 0; i < 64 && err == 0; ++i) {
    uint32_t n = 0;
    err = c.Write(e.nodeid, fh, off, chunk, &n);
    off += n;
    if (err == 0 && n < chunk.size()) err = c.Write(e.nodeid, fh, off, chunk, &n);
  }
  NEXPECT_EQ(err, ENOSPC);
  NEXPECT_GT(off, 0u);
  // Other ops that need space fail the same way; the rest works.
  fuse_fallocate_in fa{fh, off, 1 << 20, 0, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_FALLOCATE, e.nodeid).Arg(fa)).error, ENOSPC);
  NEXPECT_EQ(c.Getattr(e.nodeid), 0);
  NEXPECT_EQ(c.Send(PtReq(FUSE_STATFS, c.root())).error, 0);
  std::string got;
  NEXPECT_EQ(c.Read(e.nodeid, fh, 0, 10, &got), 0);
  NEXPECT_EQ(got, std::string(10, 'z'));
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
  NEXPECT_EQ(c.Unlink(c.root(), "big"), 0);
  // Space comes back when the kernel forgets the unlinked node (its descriptor held the inode,
  // as an open file does).
  c.Forget(e.nodeid, 1);
  NASSERT_EQ(c.Create(c.root(), "small", O_RDWR, 0644, &e, &fh), 0);
  NEXPECT_EQ(c.Write(e.nodeid, fh, 0, chunk), 0);
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
}

NTEST(PassthroughLimits, DescriptorLimitGivesEmfileAndNothingLeaks) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("existing"), "x"));
  const size_t baseline = nydus::testing::OpenFdCount();
  {
    PtClient c(dir.path());
    struct rlimit old;
    NASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = old;
    low.rlim_cur = nydus::testing::OpenFdCount() + 40;
    NASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<std::pair<uint64_t, uint64_t>> open;  // node, fh
    int err = 0;
    for (int i = 0; i < 100 && err == 0; ++i) {
      fuse_entry_out e{};
      uint64_t fh = 0;
      err = c.Create(c.root(), "f" + std::to_string(i), O_RDWR, 0644, &e, &fh);
      if (err == 0) open.emplace_back(e.nodeid, fh);
    }
    // Whatever slot is left goes too, so nothing here can open anything.
    std::vector<int> extra;
    for (int fd; (fd = dup(0)) >= 0;) extra.push_back(fd);
    const int lookup_err = c.Lookup(c.root(), "existing");
    fuse_mkdir_in m{0755, 0};
    const int mkdir_err = c.Send(PtReq(FUSE_MKDIR, c.root()).Arg(m).Name("d")).error;
    for (int fd : extra) close(fd);
    NASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    NEXPECT_EQ(err, EMFILE);
    NEXPECT_EQ(lookup_err, EMFILE);
    NEXPECT_EQ(mkdir_err, EMFILE);
    // A create refused for lack of descriptors created nothing.
    NEXPECT_FALSE(nydus::testing::Exists(dir.File("f" + std::to_string(open.size()))));
    NEXPECT_FALSE(nydus::testing::Exists(dir.File("d")));
    NEXPECT_GT(open.size(), 10u);
    // Still serving; then everything goes back.
    NEXPECT_EQ(c.Getattr(c.root()), 0);
    for (auto& [node, fh] : open) {
      NEXPECT_EQ(c.Release(node, fh), 0);
      c.Forget(node, 1);
    }
    auto s = c.fs->Stats();
    NEXPECT_EQ(s.handles, 0u);
    NEXPECT_EQ(s.inodes, 1u);
  }
  NEXPECT_EQ(nydus::testing::OpenFdCount(), baseline);
}

NTEST(PassthroughLimits, DescriptorsFollowForgetAndRelease) {
  TempDir dir;
  for (int i = 0; i < 30; ++i) NASSERT_TRUE(WriteFileAt(dir.File("f" + std::to_string(i)), "x"));
  PtClient c(dir.path());
  const size_t before = nydus::testing::OpenFdCount();
  std::vector<uint64_t> nodes;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 30; ++i) {
      fuse_entry_out e{};
      NASSERT_EQ(c.Lookup(c.root(), "f" + std::to_string(i), &e), 0);
      uint64_t fh = 0;
      NASSERT_EQ(c.Open(e.nodeid, O_RDONLY, &fh), 0);
      NASSERT_EQ(c.Release(e.nodeid, fh), 0);
      nodes.push_back(e.nodeid);
    }
  }
  // 30 nodes, one O_PATH descriptor each, whatever the lookup count.
  NEXPECT_EQ(nydus::testing::OpenFdCount(), before + 30);
  for (uint64_t n : nodes) c.Forget(n, 1);
  NEXPECT_EQ(nydus::testing::OpenFdCount(), before);
  // Reset drops everything but the root.
  fuse_entry_out e{};
  uint64_t fh = 0;
  NASSERT_EQ(c.Lookup(c.root(), "f1", &e), 0);
  NASSERT_EQ(c.Open(e.nodeid, O_RDONLY, &fh), 0);
  c.fs->Reset();
  NEXPECT_EQ(nydus::testing::OpenFdCount(), before);
  NEXPECT_EQ(c.Getattr(e.nodeid), ESTALE);
  NEXPECT_EQ(c.Getattr(c.root()), 0);
}

NTEST(PassthroughLimits, PosixLocksConflictWaitAndRelease) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), std::string(100, 'x')));
  PtClient c(dir.path());
  fuse_entry_out e{};
  NASSERT_EQ(c.Lookup(c.root(), "f", &e), 0);
  uint64_t fa = 0, fb = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_RDWR, &fa), 0);
  NASSERT_EQ(c.Open(e.nodeid, O_RDWR, &fb), 0);
  const uint64_t A = 0xA, B = 0xB;
  NASSERT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fa, A, F_WRLCK, 0, 49))).error, 0);
  // Another owner conflicts; the same owner's own lock does not.
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fb, B, F_RDLCK, 10, 10))).error, EAGAIN);
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fb, B, F_WRLCK, 50, kEof))).error, 0);
  auto r = c.Send(PtReq(FUSE_GETLK, e.nodeid).Arg(Lock(fb, B, F_WRLCK, 0, kEof)));
  NASSERT_EQ(r.error, 0);
  auto lk = r.As<fuse_lk_out>().lk;
  NEXPECT_EQ(lk.type, static_cast<uint32_t>(F_WRLCK));
  NEXPECT_EQ(lk.start, 0u);
  NEXPECT_EQ(lk.end, 49u);
  r = c.Send(PtReq(FUSE_GETLK, e.nodeid).Arg(Lock(fa, A, F_WRLCK, 0, 10)));
  NEXPECT_EQ(r.As<fuse_lk_out>().lk.type, static_cast<uint32_t>(F_UNLCK));
  // A host process sees the guest's lock.
  int host = open(dir.File("f").c_str(), O_RDWR | O_CLOEXEC);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_start = 0;
  fl.l_len = 1;
  NEXPECT_EQ(fcntl(host, F_OFD_SETLK, &fl), -1);
  close(host);
  // Bad ranges / types.
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fa, A, F_WRLCK, 10, 5))).error, EINVAL);
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fa, A, 77, 0, 5))).error, EINVAL);

  // SETLKW by B waits (deferred: the calling thread is free) until A unlocks.
  MemRequest wait(PtReq(FUSE_SETLKW, e.nodeid).Arg(Lock(fb, B, F_WRLCK, 0, 9)).Bytes(900, 0, 0),
                  64);
  auto o = c.fs->Handle(PtClient::Decoded(wait), wait);
  NASSERT_TRUE(o.deferred);
  // The waiter thread counts its wait once it runs (late under TSan): poll, bounded.
  for (int i = 0; i < 5000 && c.fs->Stats().lock_waits == 0; ++i) usleep(1000);
  NEXPECT_EQ(c.fs->Stats().lock_waits, 1u);
  NEXPECT_EQ(wait.completions(), 0);
  NASSERT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fa, A, F_UNLCK, 0, kEof))).error, 0);
  NASSERT_TRUE(WaitCompleted(wait));
  NEXPECT_EQ(PtClient::Parse(wait).error, 0);
  NEXPECT_EQ(wait.header().unique, 900u);

  // SETLKW by A waits on B's lock; A is interrupted.
  MemRequest intr(PtReq(FUSE_SETLKW, e.nodeid).Arg(Lock(fa, A, F_RDLCK, 5, 5)).Bytes(901, 0, 0),
                  64);
  NASSERT_TRUE(c.fs->Handle(PtClient::Decoded(intr), intr).deferred);
  NEXPECT_TRUE(c.fs->Interrupt(901));
  NASSERT_TRUE(WaitCompleted(intr));
  NEXPECT_EQ(PtClient::Parse(intr).error, EINTR);
  NEXPECT_FALSE(c.fs->Interrupt(901));

  // SETLKW by A waits again; B's close (FLUSH with its owner) frees it.
  MemRequest flushed(
      PtReq(FUSE_SETLKW, e.nodeid).Arg(Lock(fa, A, F_WRLCK, 0, kEof)).Bytes(902, 0, 0), 64);
  NASSERT_TRUE(c.fs->Handle(PtClient::Decoded(flushed), flushed).deferred);
  fuse_flush_in fl_in{fb, 0, 0, B};
  NEXPECT_EQ(c.Send(PtReq(FUSE_FLUSH, e.nodeid).Arg(fl_in)).error, 0);
  NASSERT_TRUE(WaitCompleted(flushed));
  NEXPECT_EQ(PtClient::Parse(flushed).error, 0);

  // A session reset ends a waiting SETLKW with EIO.
  MemRequest reset(PtReq(FUSE_SETLKW, e.nodeid).Arg(Lock(fb, B, F_WRLCK, 0, 0)).Bytes(903, 0, 0),
                   64);
  NASSERT_TRUE(c.fs->Handle(PtClient::Decoded(reset), reset).deferred);
  c.fs->Reset();
  NASSERT_TRUE(WaitCompleted(reset));
  NEXPECT_EQ(PtClient::Parse(reset).error, EIO);
  NEXPECT_EQ(c.fs->Stats().lock_waits, 0u);
}

NTEST(PassthroughLimits, FlockPerOpenFileAndReleasedOnRelease) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "x"));
  PtClient c(dir.path());
  fuse_entry_out e{};
  NASSERT_EQ(c.Lookup(c.root(), "f", &e), 0);
  uint64_t fa = 0, fb = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_RDONLY, &fa), 0);
  NASSERT_EQ(c.Open(e.nodeid, O_RDONLY, &fb), 0);
  // flock owners are the open files (the kernel passes one id per struct file).
  NASSERT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fa, 1, F_WRLCK, 0, kEof, true))).error, 0);
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(fb, 2, F_RDLCK, 0, kEof, true))).error,
             EAGAIN);
  NEXPECT_EQ(c.Send(PtReq(FUSE_GETLK, e.nodeid).Arg(Lock(fb, 2, F_RDLCK, 0, kEof, true))).error,
             EINVAL);
  MemRequest wait(
      PtReq(FUSE_SETLKW, e.nodeid).Arg(Lock(fb, 2, F_RDLCK, 0, kEof, true)).Bytes(77, 0, 0), 64);
  NASSERT_TRUE(c.fs->Handle(PtClient::Decoded(wait), wait).deferred);
  // The holder's file is released with FUSE_RELEASE_FLOCK_UNLOCK: the waiter gets the lock.
  fuse_release_in rel{fa, 0, FUSE_RELEASE_FLOCK_UNLOCK, 1};
  NEXPECT_EQ(c.Send(PtReq(FUSE_RELEASE, e.nodeid).Arg(rel)).error, 0);
  NASSERT_TRUE(WaitCompleted(wait));
  NEXPECT_EQ(PtClient::Parse(wait).error, 0);
  NEXPECT_EQ(c.Release(e.nodeid, fb), 0);
}

NTEST(PassthroughLimits, DestroyingTheFsAnswersParkedLocks) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "x"));
  MemRequest* wait = nullptr;
  std::unique_ptr<MemRequest> holder;
  {
    PtClient c(dir.path());
    fuse_entry_out e{};
    NASSERT_EQ(c.Lookup(c.root(), "f", &e), 0);
    NASSERT_EQ(c.Send(PtReq(FUSE_SETLK, e.nodeid).Arg(Lock(0, 1, F_WRLCK, 0, kEof))).error, 0);
    holder = std::make_unique<MemRequest>(
        PtReq(FUSE_SETLKW, e.nodeid).Arg(Lock(0, 2, F_WRLCK, 0, kEof)).Bytes(5, 0, 0), 64);
    wait = holder.get();
    NASSERT_TRUE(c.fs->Handle(PtClient::Decoded(*wait), *wait).deferred);
  }
  NEXPECT_EQ(wait->completions(), 1);
  NEXPECT_EQ(PtClient::Parse(*wait).error, EIO);
}
