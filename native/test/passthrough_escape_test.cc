// PassthroughFs containment: whatever the guest sends, nothing outside the share is read,
// written, created or opened. Each test keeps a directory next to the share ("outside") with a
// file the guest must never reach, and checks it afterwards.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "passthrough_testing.h"

using nydus::testing::Exists;
using nydus::testing::PtClient;
using nydus::testing::PtReq;
using nydus::testing::ReadFileAt;
using nydus::testing::TempDir;
using nydus::testing::WriteFileAt;

namespace {

// <tmp>/share (served) and <tmp>/outside/secret (must stay "secret", mode 0600, no xattrs).
struct Layout {
  TempDir tmp;
  std::string share = tmp.File("share");
  std::string outside = tmp.File("outside");
  std::string secret = tmp.File("outside/secret");
  Layout() {
    mkdir(share.c_str(), 0755);
    mkdir(outside.c_str(), 0755);
    WriteFileAt(secret, "secret", 0600);
  }
  bool Untouched() const {
    struct stat st;
    if (lstat(secret.c_str(), &st) != 0) return false;
    char buf[8];
    return ReadFileAt(secret) == "secret" && (st.st_mode & 07777) == 0600 && st.st_uid == 0 &&
           llistxattr(secret.c_str(), buf, sizeof(buf)) == 0 && !Exists(outside + "/new") &&
           !Exists(outside + "/x");
  }
};

}  // namespace

NTEST(PassthroughEscape, SymlinksPointingOutAreNeverFollowed) {
  Layout l;
  NASSERT_EQ(symlink(l.outside.c_str(), (l.share + "/dirlink").c_str()), 0);
  NASSERT_EQ(symlink(l.secret.c_str(), (l.share + "/filelink").c_str()), 0);
  NASSERT_EQ(symlink("../outside/secret", (l.share + "/rel").c_str()), 0);
  PtClient c(l.share);
  fuse_entry_out d{}, f{}, r{};
  NASSERT_EQ(c.Lookup(c.root(), "dirlink", &d), 0);
  NASSERT_EQ(c.Lookup(c.root(), "filelink", &f), 0);
  NASSERT_EQ(c.Lookup(c.root(), "rel", &r), 0);
  NEXPECT_EQ(d.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  NEXPECT_EQ(f.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  // A symlink node is not a directory to look into or create in.
  NEXPECT_EQ(c.Lookup(d.nodeid, "secret"), ENOTDIR);
  NEXPECT_EQ(c.Create(d.nodeid, "new", O_RDWR, 0644), ENOTDIR);
  NEXPECT_EQ(c.Mkdir(d.nodeid, "new", 0755), ENOTDIR);
  NEXPECT_EQ(c.Mknod(d.nodeid, "x", S_IFREG | 0644, 0), ENOTDIR);
  NEXPECT_EQ(c.Symlink(d.nodeid, "x", "y"), ENOTDIR);
  NEXPECT_EQ(c.Unlink(d.nodeid, "secret"), ENOTDIR);
  NEXPECT_EQ(c.Rename(d.nodeid, "secret", c.root(), "stolen"), ENOTDIR);
  uint64_t fh = 0;
  NEXPECT_EQ(c.Opendir(d.nodeid, &fh), ENOTDIR);
  // Nor a file to open, truncate, chmod, chown or tag.
  NEXPECT_EQ(c.Open(f.nodeid, O_RDWR | O_TRUNC, &fh), ELOOP);
  NEXPECT_EQ(c.Open(r.nodeid, O_RDONLY, &fh), ELOOP);
  fuse_setattr_in s{};
  s.valid = FATTR_SIZE;
  NEXPECT_EQ(c.Setattr(f.nodeid, s), EINVAL);
  s.valid = FATTR_MODE;
  s.mode = 0777;
  c.Setattr(f.nodeid, s);  // the host refuses or changes the link itself; never the target
  s.valid = FATTR_UID;
  s.uid = 1234;
  NEXPECT_EQ(c.Setattr(f.nodeid, s), 0);
  struct stat st;
  NASSERT_EQ(lstat((l.share + "/filelink").c_str(), &st), 0);
  NEXPECT_EQ(st.st_uid, 1234u);  // lchown semantics
  fuse_setxattr_in x{1, 0, 0, 0};
  c.Send(PtReq(FUSE_SETXATTR, f.nodeid).Raw(&x, 8).Name("trusted.x").Raw("1"));
  // CREATE over a symlink name: never through it, with or without O_EXCL.
  NEXPECT_EQ(c.Create(c.root(), "filelink", O_RDWR | O_TRUNC, 0644), ELOOP);
  NEXPECT_EQ(c.Create(c.root(), "filelink", O_RDWR | O_EXCL, 0644), EEXIST);
  NEXPECT_EQ(c.Link(f.nodeid, c.root(), "hard"), 0);  // links the symlink itself
  NASSERT_EQ(lstat((l.share + "/hard").c_str(), &st), 0);
  NEXPECT_TRUE(S_ISLNK(st.st_mode));
  NEXPECT_TRUE(l.Untouched());
}

NTEST(PassthroughEscape, DotDotChainsAndSlashesStayInside) {
  Layout l;
  NASSERT_EQ(mkdir((l.share + "/a").c_str(), 0755), 0);
  NASSERT_EQ(mkdir((l.share + "/a/b").c_str(), 0755), 0);
  PtClient c(l.share);
  fuse_entry_out a{}, b{}, e{};
  NASSERT_EQ(c.Lookup(c.root(), "a", &a), 0);
  NASSERT_EQ(c.Lookup(a.nodeid, "b", &b), 0);
  // Walking up: b -> a -> root -> root -> root.
  NASSERT_EQ(c.Lookup(b.nodeid, "..", &e), 0);
  NEXPECT_EQ(e.nodeid, a.nodeid);
  NASSERT_EQ(c.Lookup(e.nodeid, "..", &e), 0);
  NEXPECT_EQ(e.nodeid, c.root());
  for (int i = 0; i < 3; ++i) {
    NASSERT_EQ(c.Lookup(e.nodeid, "..", &e), 0);
    NEXPECT_EQ(e.nodeid, c.root());
  }
  // Any name with a slash, in every op that takes one.
  for (const char* bad :
       {"../outside/secret", "../outside", "a/../../outside", "/etc/passwd", "a/", "/"}) {
    NEXPECT_EQ(c.Lookup(c.root(), bad), EINVAL);
    NEXPECT_EQ(c.Mkdir(c.root(), bad, 0755), EINVAL);
    NEXPECT_EQ(c.Mknod(c.root(), bad, S_IFREG | 0644, 0), EINVAL);
    NEXPECT_EQ(c.Create(c.root(), bad, O_RDWR, 0644), EINVAL);
    NEXPECT_EQ(c.Symlink(c.root(), bad, "t"), EINVAL);
    NEXPECT_EQ(c.Unlink(c.root(), bad), EINVAL);
    NEXPECT_EQ(c.Rmdir(c.root(), bad), EINVAL);
    NEXPECT_EQ(c.Link(a.nodeid, c.root(), bad), EINVAL);
    NEXPECT_EQ(c.Rename(c.root(), "a", c.root(), bad), EINVAL);
    NEXPECT_EQ(c.Rename(c.root(), bad, c.root(), "z"), EINVAL);
  }
  NEXPECT_TRUE(Exists(l.share + "/a/b"));
  NEXPECT_TRUE(l.Untouched());
}

NTEST(PassthroughEscape, RenamesCannotCrossTheRoot) {
  Layout l;
  NASSERT_TRUE(WriteFileAt(l.share + "/f", "f"));
  PtClient c(l.share);
  // Out through "..", into another filesystem's node, or the root's own name.
  NEXPECT_EQ(c.Rename(c.root(), "f", c.root(), "../outside/x"), EINVAL);
  NEXPECT_EQ(c.Rename(c.root(), "..", c.root(), "x"), EINVAL);
  NEXPECT_EQ(c.Rename(c.root(), "f", uint64_t{1} << 40, "x"), EXDEV);
  NEXPECT_EQ(c.Rename(c.root(), "f", c.root(), "..", RENAME_EXCHANGE), EINVAL);
  // RENAME2 from a node id this filesystem does not own.
  fuse_rename2_in in{c.root(), 0, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_RENAME2, uint64_t{1} << 40).Arg(in).Name("f").Name("g")).error,
             ESTALE);
  NEXPECT_EQ(ReadFileAt(l.share + "/f"), std::string("f"));
  NEXPECT_TRUE(l.Untouched());
}

NTEST(PassthroughEscape, SymlinkSwappedInAfterLookupIsNeverUsed) {
  Layout l;
  NASSERT_TRUE(WriteFileAt(l.share + "/victim", "orig"));
  NASSERT_EQ(mkdir((l.share + "/dir").c_str(), 0755), 0);
  PtClient c(l.share);
  fuse_entry_out v{}, d{};
  NASSERT_EQ(c.Lookup(c.root(), "victim", &v), 0);
  NASSERT_EQ(c.Lookup(c.root(), "dir", &d), 0);
  // On the host, both names become symlinks to the outside after the guest looked them up.
  NASSERT_EQ(rename((l.share + "/victim").c_str(), (l.share + "/victim.old").c_str()), 0);
  NASSERT_EQ(symlink(l.secret.c_str(), (l.share + "/victim").c_str()), 0);
  NASSERT_EQ(rename((l.share + "/dir").c_str(), (l.share + "/dir.old").c_str()), 0);
  NASSERT_EQ(symlink(l.outside.c_str(), (l.share + "/dir").c_str()), 0);
  // Operations on the nodes reach the inodes the guest looked up, wherever they are now.
  uint64_t fh = 0;
  NASSERT_EQ(c.Open(v.nodeid, O_RDWR | O_TRUNC, &fh), 0);
  NASSERT_EQ(c.Write(v.nodeid, fh, 0, "new"), 0);
  NEXPECT_EQ(ReadFileAt(l.share + "/victim.old"), std::string("new"));
  fuse_setattr_in s{};
  s.valid = FATTR_MODE;
  s.mode = 0666;
  NEXPECT_EQ(c.Setattr(v.nodeid, s), 0);
  fuse_entry_out n{};
  NASSERT_EQ(c.Create(d.nodeid, "new", O_RDWR, 0644, &n), 0);
  NEXPECT_TRUE(Exists(l.share + "/dir.old/new"));
  NEXPECT_EQ(c.Unlink(d.nodeid, "secret"), ENOENT);
  // A fresh lookup sees the symlink, as a symlink.
  fuse_entry_out again{};
  NASSERT_EQ(c.Lookup(c.root(), "victim", &again), 0);
  NEXPECT_EQ(again.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  NEXPECT_EQ(c.Release(v.nodeid, fh), 0);
  NEXPECT_TRUE(l.Untouched());
}

NTEST(PassthroughEscape, RacingSymlinkSwapsNeverReachOutside) {
  Layout l;
  const std::string name = l.share + "/x";
  const std::string file = l.share + "/x.file";
  const std::string link = l.share + "/x.link";
  NASSERT_TRUE(WriteFileAt(name, "inside"));
  PtClient c(l.share);
  std::atomic<bool> stop{false};
  // The host flips "x" between a regular file and a symlink to the outside, as fast as it can.
  std::thread flipper([&] {
    bool is_file = true;
    while (!stop.load()) {
      if (is_file) {
        rename(name.c_str(), file.c_str());
        symlink(l.secret.c_str(), link.c_str());
        rename(link.c_str(), name.c_str());
      } else {
        rename(name.c_str(), link.c_str());
        unlink(link.c_str());
        rename(file.c_str(), name.c_str());
      }
      is_file = !is_file;
    }
  });
  int opened = 0;
  for (int i = 0; i < 150; ++i) {
    fuse_entry_out e{};
    if (c.Lookup(c.root(), "x", &e) == 0) {
      uint64_t fh = 0;
      if (c.Open(e.nodeid, O_RDWR | O_TRUNC, &fh) == 0) {
        c.Write(e.nodeid, fh, 0, "guest");
        c.Release(e.nodeid, fh);
        ++opened;
      }
      fuse_setattr_in s{};
      s.valid = FATTR_MODE | FATTR_SIZE;
      s.mode = 0777;
      c.Setattr(e.nodeid, s);
      c.Forget(e.nodeid, 1);
    }
    uint64_t fh = 0;
    fuse_entry_out n{};
    if (c.Create(c.root(), "x", O_RDWR | O_TRUNC, 0644, &n, &fh) == 0) {
      c.Write(n.nodeid, fh, 0, "guest");
      c.Release(n.nodeid, fh);
      c.Forget(n.nodeid, 1);
    }
  }
  stop = true;
  flipper.join();
  NEXPECT_GT(opened, 0);
  NEXPECT_TRUE(l.Untouched());
}

NTEST(PassthroughEscape, DevicesAndFifosAreNeverOpened) {
  Layout l;
  NASSERT_EQ(mkfifo((l.share + "/fifo").c_str(), 0666), 0);
  const bool root = nydus::testing::CanMakeDevices(l.share);
  if (root) {
    NASSERT_EQ(mknod((l.share + "/mem").c_str(), S_IFCHR | 0666, makedev(1, 1)), 0);
  } else {
    std::fprintf(stderr, "    skipped part: no CAP_MKNOD for a device node\n");
  }
  PtClient c(l.share);
  fuse_entry_out f{}, m{};
  NASSERT_EQ(c.Lookup(c.root(), "fifo", &f), 0);
  uint64_t fh = 0;
  // Opening a FIFO on the host would block this thread until a writer came: refused at once.
  NEXPECT_EQ(c.Open(f.nodeid, O_RDONLY, &fh), EACCES);
  NEXPECT_EQ(c.Create(c.root(), "fifo", O_RDONLY, 0644), EACCES);
  std::string got;
  NEXPECT_EQ(c.Read(f.nodeid, 0, 0, 16, &got), EBADF);
  NEXPECT_EQ(c.Write(f.nodeid, 0, 0, "x"), EBADF);
  if (root) {
    NASSERT_EQ(c.Lookup(c.root(), "mem", &m), 0);
    NEXPECT_EQ(c.Open(m.nodeid, O_RDWR, &fh), EACCES);
    NEXPECT_EQ(c.Create(c.root(), "mem", O_RDWR, 0644), EACCES);
    NEXPECT_EQ(c.Read(m.nodeid, 0, 0, 16, &got), EBADF);
    fuse_lk_in lk{};
    lk.lk.type = F_RDLCK;
    NEXPECT_EQ(c.Send(PtReq(FUSE_SETLK, m.nodeid).Arg(lk)).error, EINVAL);
  }
  NEXPECT_EQ(c.fs->Stats().handles, 0u);
}

NTEST(PassthroughEscape, NodesOfOtherFilesystemsAreRefused) {
  Layout l;
  nydus::passthrough::PassthroughOptions o;
  o.node_base = 100;
  o.node_span = 100;
  PtClient c(l.share, o);
  for (uint64_t node : {uint64_t{1}, uint64_t{99}, uint64_t{200}, ~uint64_t{0}}) {
    NEXPECT_EQ(c.Getattr(node), ESTALE);
    NEXPECT_EQ(c.Lookup(node, "x"), ESTALE);
    NEXPECT_EQ(c.Mkdir(node, "x", 0755), ESTALE);
  }
  // LINK of a foreign node into this one: EXDEV, as Linux across mounts.
  NEXPECT_EQ(c.Link(5, c.root(), "x"), EXDEV);
  // Known range, unknown node (forgotten): ESTALE.
  NEXPECT_EQ(c.Getattr(150), ESTALE);
  NEXPECT_TRUE(l.Untouched());
}
