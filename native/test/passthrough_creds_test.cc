// PassthroughFs credentials: host permission checks run as the guest's caller (fsuid/fsgid,
// no supplementary groups, the request's umask) on the calling thread only, and the thread is
// itself again afterwards; suid/sgid are killed when the kernel says so.
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "passthrough/pt_creds.h"
#include "passthrough_testing.h"

using nydus::testing::PtClient;
using nydus::testing::PtReq;
using nydus::testing::ReadFileAt;
using nydus::testing::TempDir;
using nydus::testing::WriteFileAt;

namespace {

uint32_t ThreadFsuid() { return static_cast<uint32_t>(syscall(SYS_setfsuid, -1)); }
uint32_t ThreadFsgid() { return static_cast<uint32_t>(syscall(SYS_setfsgid, -1)); }

std::vector<gid_t> ThreadGroups() {
  std::vector<gid_t> g(static_cast<size_t>(getgroups(0, nullptr)));
  if (!g.empty()) getgroups(static_cast<int>(g.size()), g.data());
  return g;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_mode : 0;
}

}  // namespace

NTEST(PassthroughCreds, CallerCannotWriteRootOwnedFile) {
  if (geteuid() != 0) PT_SKIP("needs root to act as another uid");
  TempDir dir;
  NASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  NASSERT_TRUE(WriteFileAt(dir.File("root644"), "root data", 0644));
  NASSERT_EQ(mkdir(dir.File("rootdir").c_str(), 0755), 0);
  PtClient c(dir.path());
  NEXPECT_TRUE(c.fs->Stats().caller_credentials);
  c.uid = 1000;
  c.gid = 1000;
  fuse_entry_out f{}, d{};
  NASSERT_EQ(c.Lookup(c.root(), "root644", &f), 0);
  NASSERT_EQ(c.Lookup(c.root(), "rootdir", &d), 0);
  uint64_t fh = 0;
  NEXPECT_EQ(c.Open(f.nodeid, O_WRONLY, &fh), EACCES);
  NEXPECT_EQ(c.Open(f.nodeid, O_RDWR | O_TRUNC, &fh), EACCES);
  fuse_setattr_in s{};
  s.valid = FATTR_SIZE;
  NEXPECT_EQ(c.Setattr(f.nodeid, s), EACCES);
  s.valid = FATTR_MODE;
  s.mode = 0666;
  NEXPECT_EQ(c.Setattr(f.nodeid, s), EPERM);
  // touch(1): both times "now" needs write access (EACCES); one of them, ownership (EPERM).
  s.valid = FATTR_ATIME | FATTR_ATIME_NOW | FATTR_MTIME | FATTR_MTIME_NOW;
  NEXPECT_EQ(c.Setattr(f.nodeid, s), EACCES);
  s.valid = FATTR_MTIME | FATTR_MTIME_NOW;
  NEXPECT_EQ(c.Setattr(f.nodeid, s), EPERM);
  NEXPECT_EQ(c.Create(d.nodeid, "new", O_RDWR, 0644), EACCES);
  NEXPECT_EQ(c.Mkdir(d.nodeid, "new", 0755), EACCES);
  NEXPECT_EQ(c.Unlink(c.root(), "root644"), EACCES);
  NEXPECT_EQ(c.Rename(c.root(), "root644", d.nodeid, "moved"), EACCES);
  fuse_setxattr_in x{1, 0, 0, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETXATTR, f.nodeid).Raw(&x, 8).Name("user.x").Raw("1")).error,
             EACCES);
  // Reading is allowed (0644).
  NASSERT_EQ(c.Open(f.nodeid, O_RDONLY, &fh), 0);
  std::string got;
  NEXPECT_EQ(c.Read(f.nodeid, fh, 0, 100, &got), 0);
  NEXPECT_EQ(got, std::string("root data"));
  NEXPECT_EQ(c.Release(f.nodeid, fh), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("root644")), std::string("root data"));
  // The same requests as root succeed.
  c.uid = 0;
  c.gid = 0;
  NASSERT_EQ(c.Open(f.nodeid, O_WRONLY, &fh), 0);
  NEXPECT_EQ(c.Release(f.nodeid, fh), 0);
  // The thread is itself again.
  NEXPECT_EQ(ThreadFsuid(), 0u);
  NEXPECT_EQ(ThreadFsgid(), 0u);
}

NTEST(PassthroughCreds, NewEntriesBelongToTheCallerWithTheRequestUmask) {
  if (geteuid() != 0) PT_SKIP("needs root to act as another uid");
  TempDir dir;
  NASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);
  PtClient c(dir.path());
  c.uid = 1000;
  c.gid = 2000;
  fuse_entry_out e{};
  uint64_t fh = 0;
  // The process umask (022 here, or whatever Node has) never applies: umask 0 gives 0666.
  const mode_t old = umask(022);
  NASSERT_EQ(c.Create(c.root(), "f", O_RDWR, 0666, &e, &fh, 0), 0);
  NEXPECT_EQ(e.attr.uid, 1000u);
  NEXPECT_EQ(e.attr.gid, 2000u);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 0777, 0666u);
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
  NASSERT_EQ(c.Mkdir(c.root(), "d", 0777, &e, 027), 0);
  NEXPECT_EQ(ModeOf(dir.File("d")) & 0777, 0750u);
  NEXPECT_EQ(e.attr.uid, 1000u);
  fuse_mknod_in mk{S_IFIFO | 0666, 0, 077, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_MKNOD, c.root()).Arg(mk).Name("p")).error, 0);
  NEXPECT_EQ(ModeOf(dir.File("p")) & 0777, 0600u);
  NASSERT_EQ(c.Symlink(c.root(), "l", "t", &e), 0);
  NEXPECT_EQ(e.attr.uid, 1000u);
  umask(old);
  // Device nodes need CAP_MKNOD, which a non-root caller does not have on the host either.
  NEXPECT_EQ(c.Mknod(c.root(), "dev", S_IFCHR | 0600, 0x0103), EPERM);
}

NTEST(PassthroughCreds, SupplementaryGroupsAreDroppedFsgidCounts) {
  if (geteuid() != 0) PT_SKIP("needs root to act as another uid");
  TempDir dir;
  NASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  // Make sure this thread has supplementary group 0, which must not help the caller.
  const std::vector<gid_t> before = ThreadGroups();
  const gid_t zero = 0;
  NASSERT_EQ(syscall(SYS_setgroups, 1, &zero), 0);
  NASSERT_TRUE(WriteFileAt(dir.File("g0"), "x", 0660));  // root:root rw-rw----
  NASSERT_TRUE(WriteFileAt(dir.File("g3000"), "x", 0660));
  NASSERT_EQ(chown(dir.File("g3000").c_str(), 0, 3000), 0);
  PtClient c(dir.path());
  fuse_entry_out g0{}, g3000{};
  NASSERT_EQ(c.Lookup(c.root(), "g0", &g0), 0);
  NASSERT_EQ(c.Lookup(c.root(), "g3000", &g3000), 0);
  c.uid = 1000;
  c.gid = 1000;
  uint64_t fh = 0;
  NEXPECT_EQ(c.Open(g0.nodeid, O_RDONLY, &fh), EACCES);
  NEXPECT_EQ(c.Open(g3000.nodeid, O_RDONLY, &fh), EACCES);
  c.gid = 3000;
  NASSERT_EQ(c.Open(g3000.nodeid, O_RDWR, &fh), 0);
  NEXPECT_EQ(c.Release(g3000.nodeid, fh), 0);
  // The thread keeps no supplementary groups (root's rights do not depend on them), and gets
  // them dropped again if something gave them back.
  NEXPECT_TRUE(ThreadGroups().empty());
  NASSERT_EQ(syscall(SYS_setgroups, 1, &zero), 0);
  NEXPECT_EQ(c.Open(g0.nodeid, O_RDONLY, &fh), EACCES);
  NEXPECT_TRUE(ThreadGroups().empty());
  NASSERT_EQ(syscall(SYS_setgroups, before.size(), before.data()), 0);
}

NTEST(PassthroughCreds, CredentialsArePerThread) {
  if (geteuid() != 0) PT_SKIP("needs root to act as another uid");
  TempDir dir;
  NASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);
  PtClient c(dir.path());
  // Two threads create files at the same time, one as root and one as 1000; each file has its
  // creator's owner, so no thread's switch leaked into the other.
  auto run = [&](uint32_t uid, const std::string& prefix) {
    for (int i = 0; i < 100; ++i) {
      fuse_mkdir_in m{0755, 0};
      auto bytes = PtReq(FUSE_MKDIR, c.root())
                       .Arg(m)
                       .Name(prefix + std::to_string(i))
                       .Bytes(static_cast<uint64_t>(i + 1), uid, uid);
      nydus::testing::MemRequest req(bytes, 4096);
      auto o = c.fs->Handle(PtClient::Decoded(req), req);
      req.Complete(o.written);
      auto r = PtClient::Parse(req);
      NEXPECT_EQ(r.error, 0);
      NEXPECT_EQ(r.As<fuse_entry_out>().attr.uid, uid);
      NEXPECT_EQ(ThreadFsuid(), 0u);
    }
  };
  std::thread a([&] { run(0, "root-"); });
  std::thread b([&] { run(1000, "user-"); });
  a.join();
  b.join();
  struct stat st;
  NASSERT_EQ(stat(dir.File("root-99").c_str(), &st), 0);
  NEXPECT_EQ(st.st_uid, 0u);
  NASSERT_EQ(stat(dir.File("user-99").c_str(), &st), 0);
  NEXPECT_EQ(st.st_uid, 1000u);
}

NTEST(PassthroughCreds, KillSuidOnWriteTruncateAndOpen) {
  if (geteuid() != 0) PT_SKIP("needs root to own files as other uids");
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "0123456789", 0755));
  NASSERT_EQ(chown(dir.File("f").c_str(), 1000, 1000), 0);
  auto setmode = [&](mode_t m) { return chmod(dir.File("f").c_str(), m); };
  PtClient c(dir.path());
  fuse_entry_out e{};
  NASSERT_EQ(c.Lookup(c.root(), "f", &e), 0);
  uint64_t fh = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_RDWR, &fh), 0);
  // A write without the flag from a root caller keeps the bits (root has CAP_FSETID).
  NASSERT_EQ(setmode(06755), 0);
  NASSERT_EQ(c.Write(e.nodeid, fh, 0, "a"), 0);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 07777, 06755u);
  // FUSE_WRITE_KILL_SUIDGID: cleared as for an unprivileged writer.
  NASSERT_EQ(c.Write(e.nodeid, fh, 0, "b", nullptr, FUSE_WRITE_KILL_SUIDGID), 0);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 07777, 0755u);
  // FATTR_KILL_SUIDGID with a truncate.
  NASSERT_EQ(setmode(04755), 0);
  fuse_setattr_in s{};
  s.valid = FATTR_SIZE;
  s.size = 5;
  NASSERT_EQ(c.Setattr(e.nodeid, s), 0);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 07777, 04755u);
  s.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
  s.size = 4;
  NASSERT_EQ(c.Setattr(e.nodeid, s), 0);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 07777, 0755u);
  // FUSE_OPEN_KILL_SUIDGID with O_TRUNC.
  NASSERT_EQ(setmode(04755), 0);
  fuse_open_in o{O_RDWR | O_TRUNC, FUSE_OPEN_KILL_SUIDGID};
  auto r = c.Send(PtReq(FUSE_OPEN, e.nodeid).Arg(o));
  NASSERT_EQ(r.error, 0);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 07777, 0755u);
  NEXPECT_EQ(c.Release(e.nodeid, r.As<fuse_open_out>().fh), 0);
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
  // The thread keeps CAP_FSETID afterwards: a root write without the flag keeps the bits again.
  NASSERT_EQ(setmode(04755), 0);
  NASSERT_EQ(c.Open(e.nodeid, O_RDWR, &fh), 0);
  NASSERT_EQ(c.Write(e.nodeid, fh, 0, "c"), 0);
  NEXPECT_EQ(ModeOf(dir.File("f")) & 07777, 04755u);
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
}

NTEST(PassthroughCreds, AnIdTheKernelWillNotTakeFailsTheRequest) {
  if (geteuid() != 0) PT_SKIP("needs root to act as another uid");
  TempDir dir;
  PtClient c(dir.path());
  // setfsuid(-1) cannot succeed: the switch is read back and the request refused, never run as
  // root.
  c.uid = 0xffffffffu;
  c.gid = 1000;
  NEXPECT_EQ(c.Mkdir(c.root(), "x", 0755), EPERM);
  c.uid = 1000;
  c.gid = 0xffffffffu;
  NEXPECT_EQ(c.Mkdir(c.root(), "x", 0755), EPERM);
  NEXPECT_FALSE(nydus::testing::Exists(dir.File("x")));
  NEXPECT_EQ(ThreadFsuid(), 0u);
  NEXPECT_EQ(ThreadFsgid(), 0u);
}

NTEST(PassthroughCreds, SwitchCanBeTurnedOff) {
  if (geteuid() != 0) PT_SKIP("needs root to own files as other uids");
  TempDir dir;
  NASSERT_EQ(chmod(dir.path().c_str(), 0700), 0);
  NASSERT_TRUE(WriteFileAt(dir.File("root644"), "x", 0644));
  nydus::passthrough::PassthroughOptions o;
  o.caller_credentials = false;
  PtClient c(dir.path(), o);
  NEXPECT_FALSE(c.fs->Stats().caller_credentials);
  c.uid = 1000;
  c.gid = 1000;
  fuse_entry_out f{};
  NASSERT_EQ(c.Lookup(c.root(), "root644", &f), 0);
  uint64_t fh = 0;
  NASSERT_EQ(c.Open(f.nodeid, O_WRONLY, &fh), 0);  // the daemon's own rights
  NEXPECT_EQ(c.Release(f.nodeid, fh), 0);
}
