// PassthroughFs: directory entries (LOOKUP, FORGET, MKNOD, MKDIR, SYMLINK, READLINK, LINK,
// UNLINK, RMDIR, RENAME, RENAME2) and their errnos, checked against the host tree.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "passthrough_testing.h"

using nydus::testing::Exists;
using nydus::testing::PtClient;
using nydus::testing::PtReq;
using nydus::testing::ReadFileAt;
using nydus::testing::TempDir;
using nydus::testing::WriteFileAt;

NTEST(PassthroughEntry, OpenRefusesMissingOrNonDirectoryRoot) {
  TempDir dir;
  int err = 0;
  NEXPECT_TRUE(nydus::passthrough::PassthroughFs::Open(dir.File("missing"), {}, &err) == nullptr);
  NEXPECT_EQ(err, -ENOENT);
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "x"));
  NEXPECT_TRUE(nydus::passthrough::PassthroughFs::Open(dir.File("f"), {}, &err) == nullptr);
  NEXPECT_EQ(err, -ENOTDIR);
}

NTEST(PassthroughEntry, LookupGivesStableNodesAndForgetReleasesThem) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("a"), "hello"));
  PtClient c(dir.path());
  NASSERT_TRUE(c.fs != nullptr);
  fuse_entry_out e1{}, e2{};
  NASSERT_EQ(c.Lookup(c.root(), "a", &e1), 0);
  NEXPECT_NE(e1.nodeid, c.root());
  NEXPECT_EQ(e1.attr.size, 5u);
  NEXPECT_EQ(e1.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFREG));
  struct stat st;
  NASSERT_EQ(lstat(dir.File("a").c_str(), &st), 0);
  NEXPECT_EQ(e1.attr.ino, st.st_ino);
  NEXPECT_EQ(e1.entry_valid, 5u);
  // The same host inode is the same node, with its lookup count raised.
  NASSERT_EQ(c.Lookup(c.root(), "a", &e2), 0);
  NEXPECT_EQ(e2.nodeid, e1.nodeid);
  NEXPECT_EQ(c.fs->LookupCount(e1.nodeid), 2u);
  size_t inodes = c.fs->Stats().inodes;
  c.Forget(e1.nodeid, 1);
  NEXPECT_EQ(c.fs->LookupCount(e1.nodeid), 1u);
  c.Forget(e1.nodeid, 1);
  NEXPECT_EQ(c.fs->Stats().inodes, inodes - 1);
  NEXPECT_EQ(c.Getattr(e1.nodeid), ESTALE);
  // Forgetting the root or an unknown node changes nothing.
  c.Forget(c.root(), 100);
  c.Forget(999999, 1);
  NEXPECT_EQ(c.Getattr(c.root()), 0);
  NEXPECT_EQ(c.Lookup(c.root(), "missing"), ENOENT);
}

NTEST(PassthroughEntry, RootEntryForAPseudoRootsLookup) {
  TempDir dir;
  nydus::passthrough::PassthroughOptions o;
  o.node_base = 1 << 20;
  PtClient c(dir.path(), o);
  fuse_entry_out e{};
  NASSERT_EQ(c.fs->RootEntry(&e), 0);
  NEXPECT_EQ(e.nodeid, uint64_t{1} << 20);
  NEXPECT_EQ(e.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFDIR));
  struct stat st;
  NASSERT_EQ(stat(dir.path().c_str(), &st), 0);
  NEXPECT_EQ(e.attr.ino, st.st_ino);
  NEXPECT_EQ(c.fs->Syncfs(), 0);
}

NTEST(PassthroughEntry, BatchForgetDropsOnlyItsOwnNodes) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("a"), ""));
  NASSERT_TRUE(WriteFileAt(dir.File("b"), ""));
  PtClient c(dir.path());
  fuse_entry_out a{}, b{};
  NASSERT_EQ(c.Lookup(c.root(), "a", &a), 0);
  NASSERT_EQ(c.Lookup(c.root(), "b", &b), 0);
  NASSERT_EQ(c.Lookup(c.root(), "b", &b), 0);
  fuse_batch_forget_in in{3, 0};
  fuse_forget_one f[3] = {{a.nodeid, 1}, {b.nodeid, 1}, {uint64_t{1} << 40, 1}};
  auto r = c.Send(PtReq(FUSE_BATCH_FORGET, 0).Arg(in).Arg(f));
  NEXPECT_EQ(r.written, 0u);
  NEXPECT_EQ(c.fs->LookupCount(a.nodeid), 0u);
  NEXPECT_EQ(c.fs->LookupCount(b.nodeid), 1u);
}

NTEST(PassthroughEntry, NodeIdsComeFromTheConfiguredSlice) {
  TempDir dir;
  for (int i = 0; i < 5; ++i) NASSERT_TRUE(WriteFileAt(dir.File("f" + std::to_string(i)), ""));
  nydus::passthrough::PassthroughOptions o;
  o.node_base = 1000;
  o.node_span = 4;  // the root and three more
  PtClient c(dir.path(), o);
  NEXPECT_EQ(c.root(), 1000u);
  NEXPECT_TRUE(c.fs->Owns(1003));
  NEXPECT_FALSE(c.fs->Owns(1004));
  NEXPECT_FALSE(c.fs->Owns(999));
  fuse_entry_out e{};
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    NASSERT_EQ(c.Lookup(1000, "f" + std::to_string(i), &e), 0);
    NEXPECT_TRUE(e.nodeid > 1000 && e.nodeid < 1004);
    ids.push_back(e.nodeid);
  }
  // The slice is full: ENFILE, and nothing leaks.
  NEXPECT_EQ(c.Lookup(1000, "f3"), ENFILE);
  c.Forget(ids[1], 1);
  NASSERT_EQ(c.Lookup(1000, "f4", &e), 0);
  NEXPECT_EQ(e.nodeid, ids[1]);
  NEXPECT_EQ(e.generation, 1u);  // a reused id is a new (nodeid, generation) pair
  // A node outside the slice is not ours.
  NEXPECT_EQ(c.Getattr(2000), ESTALE);
  NEXPECT_EQ(c.Getattr(1), ESTALE);
}

NTEST(PassthroughEntry, MkdirMknodSymlinkCreateOnTheHost) {
  TempDir dir;
  PtClient c(dir.path());
  fuse_entry_out d{}, f{}, p{}, l{}, s{};
  NASSERT_EQ(c.Mkdir(c.root(), "d", 0750, &d), 0);
  NEXPECT_EQ(d.attr.mode, static_cast<uint32_t>(S_IFDIR | 0750));
  struct stat st;
  NASSERT_EQ(lstat(dir.File("d").c_str(), &st), 0);
  NEXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFDIR | 0750));
  NEXPECT_EQ(c.Mkdir(c.root(), "d", 0755), EEXIST);
  NEXPECT_EQ(c.Mkdir(999999, "x", 0755), ESTALE);

  NASSERT_EQ(c.Mknod(d.nodeid, "reg", S_IFREG | 0600, 0, &f), 0);
  NEXPECT_EQ(f.attr.mode, static_cast<uint32_t>(S_IFREG | 0600));
  NASSERT_EQ(c.Mknod(d.nodeid, "fifo", S_IFIFO | 0644, 0, &p), 0);
  NEXPECT_EQ(p.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFIFO));
  // A device node (as a privileged guest would make one): created, never opened.
  if (!nydus::testing::CanMakeDevices(dir.path())) {
    std::fprintf(stderr, "    skipped part: no CAP_MKNOD for device nodes\n");
  } else {
    fuse_entry_out dev{};
    NASSERT_EQ(c.Mknod(d.nodeid, "null", S_IFCHR | 0666, makedev(1, 3), &dev), 0);
    NEXPECT_EQ(dev.attr.rdev, static_cast<uint32_t>(makedev(1, 3)));
    NASSERT_EQ(lstat(dir.File("d/null").c_str(), &st), 0);
    NEXPECT_EQ(st.st_rdev, makedev(1, 3));
  }

  NASSERT_EQ(c.Symlink(d.nodeid, "link", "../../etc/passwd", &l), 0);
  NEXPECT_EQ(l.attr.mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  char target[64] = {};
  NASSERT_GE(readlink(dir.File("d/link").c_str(), target, sizeof(target)), 0);
  NEXPECT_EQ(std::string(target), std::string("../../etc/passwd"));
  auto r = c.Send(PtReq(FUSE_READLINK, l.nodeid));
  NEXPECT_EQ(r.error, 0);
  NEXPECT_EQ(std::string(r.body.begin(), r.body.end()), std::string("../../etc/passwd"));
  NEXPECT_EQ(c.Send(PtReq(FUSE_READLINK, f.nodeid)).error, EINVAL);
  NEXPECT_EQ(c.Symlink(d.nodeid, "link", "x"), EEXIST);
  // A target as long as PATH_MAX allows, and one byte more.
  NEXPECT_EQ(c.Symlink(d.nodeid, "long", std::string(4095, 'a'), &s), 0);
  NEXPECT_EQ(c.Symlink(d.nodeid, "long2", std::string(4096, 'a')), ENAMETOOLONG);
  // Names over NAME_MAX are the host's ENAMETOOLONG; over FUSE's 1024, the decoder's.
  NEXPECT_EQ(c.Mkdir(d.nodeid, std::string(256, 'n'), 0755), ENAMETOOLONG);
  NEXPECT_EQ(c.Mkdir(d.nodeid, std::string(2000, 'n'), 0755), ENAMETOOLONG);
  // Creating under a file: ENOTDIR.
  NEXPECT_EQ(c.Mkdir(f.nodeid, "x", 0755), ENOTDIR);
}

NTEST(PassthroughEntry, LinkUnlinkRmdir) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "data"));
  PtClient c(dir.path());
  fuse_entry_out f{}, l{}, d{};
  NASSERT_EQ(c.Lookup(c.root(), "f", &f), 0);
  NASSERT_EQ(c.Link(f.nodeid, c.root(), "g", &l), 0);
  NEXPECT_EQ(l.nodeid, f.nodeid);  // the same inode is the same node
  NEXPECT_EQ(l.attr.nlink, 2u);
  NEXPECT_EQ(c.fs->LookupCount(f.nodeid), 2u);
  NEXPECT_EQ(ReadFileAt(dir.File("g")), std::string("data"));
  NEXPECT_EQ(c.Link(f.nodeid, c.root(), "g"), EEXIST);
  NASSERT_EQ(c.Mkdir(c.root(), "d", 0755, &d), 0);
  NEXPECT_EQ(c.Link(d.nodeid, c.root(), "d2"), EPERM);
  NEXPECT_EQ(c.Link(uint64_t{1} << 40, c.root(), "x"), EXDEV);

  NEXPECT_EQ(c.Unlink(c.root(), "g"), 0);
  NEXPECT_FALSE(Exists(dir.File("g")));
  NEXPECT_EQ(c.Unlink(c.root(), "g"), ENOENT);
  NEXPECT_EQ(c.Unlink(c.root(), "d"), EISDIR);
  NASSERT_TRUE(WriteFileAt(dir.File("d/inner"), ""));
  NEXPECT_EQ(c.Rmdir(c.root(), "d"), ENOTEMPTY);
  NEXPECT_EQ(c.Rmdir(c.root(), "f"), ENOTDIR);
  NEXPECT_EQ(c.Unlink(d.nodeid, "inner"), 0);
  NEXPECT_EQ(c.Rmdir(c.root(), "d"), 0);
  NEXPECT_FALSE(Exists(dir.File("d")));
  // The removed directory's node stays valid until forgotten; creating in it is ENOENT.
  NEXPECT_EQ(c.Mkdir(d.nodeid, "x", 0755), ENOENT);
  NEXPECT_EQ(c.Getattr(d.nodeid), 0);
}

NTEST(PassthroughEntry, RenameAndRename2Flags) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("a"), "A"));
  NASSERT_TRUE(WriteFileAt(dir.File("b"), "B"));
  NASSERT_EQ(mkdir(dir.File("d").c_str(), 0755), 0);
  NASSERT_EQ(mkdir(dir.File("e").c_str(), 0755), 0);
  NASSERT_TRUE(WriteFileAt(dir.File("e/x"), ""));
  PtClient c(dir.path());
  fuse_entry_out d{}, a{};
  NASSERT_EQ(c.Lookup(c.root(), "d", &d), 0);
  NASSERT_EQ(c.Lookup(c.root(), "a", &a), 0);

  NEXPECT_EQ(c.Rename(c.root(), "a", d.nodeid, "a2"), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("d/a2")), std::string("A"));
  // The node follows its inode, not its name.
  NEXPECT_EQ(c.Getattr(a.nodeid), 0);
  NEXPECT_EQ(c.Rename(d.nodeid, "a2", c.root(), "b", RENAME_NOREPLACE), EEXIST);
  NEXPECT_EQ(c.Rename(d.nodeid, "a2", c.root(), "b", RENAME_EXCHANGE), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("b")), std::string("A"));
  NEXPECT_EQ(ReadFileAt(dir.File("d/a2")), std::string("B"));
  NEXPECT_EQ(c.Rename(c.root(), "b", c.root(), "missing", RENAME_EXCHANGE), ENOENT);
  NEXPECT_EQ(c.Rename(c.root(), "missing", c.root(), "z"), ENOENT);
  NEXPECT_EQ(c.Rename(c.root(), "d", c.root(), "e"), ENOTEMPTY);
  NEXPECT_EQ(c.Rename(c.root(), "d", d.nodeid, "sub"), EINVAL);  // a directory into itself
  NASSERT_EQ(mkdir(dir.File("f").c_str(), 0755), 0);
  NASSERT_TRUE(WriteFileAt(dir.File("f/y"), ""));
  NASSERT_EQ(mkdir(dir.File("g").c_str(), 0755), 0);
  NEXPECT_EQ(c.Rename(c.root(), "g", c.root(), "f"), ENOTEMPTY);
  NEXPECT_EQ(c.Rename(c.root(), "b", c.root(), "f"), EISDIR);
  NEXPECT_EQ(c.Rename(c.root(), "f", c.root(), "b"), ENOTDIR);
  NEXPECT_EQ(c.Rename(c.root(), "b", c.root(), "c", 0x80), EINVAL);
  NEXPECT_EQ(c.Rename(c.root(), "b", uint64_t{1} << 40, "c"), EXDEV);
  if (!nydus::testing::CanMakeDevices(dir.path())) {
    std::fprintf(stderr, "    skipped part: RENAME_WHITEOUT needs CAP_MKNOD\n");
  } else {
    NEXPECT_EQ(c.Rename(c.root(), "b", c.root(), "w", RENAME_WHITEOUT), 0);
    struct stat st;
    NASSERT_EQ(lstat(dir.File("b").c_str(), &st), 0);
    NEXPECT_TRUE(S_ISCHR(st.st_mode));
    NEXPECT_EQ(st.st_rdev, makedev(0, 0));
    NEXPECT_EQ(ReadFileAt(dir.File("w")), std::string("A"));
  }
}

NTEST(PassthroughEntry, DotAndDotDotLookups) {
  TempDir dir;
  NASSERT_EQ(mkdir(dir.File("d").c_str(), 0755), 0);
  PtClient c(dir.path());
  fuse_entry_out d{}, e{};
  NASSERT_EQ(c.Lookup(c.root(), "d", &d), 0);
  NASSERT_EQ(c.Lookup(d.nodeid, ".", &e), 0);
  NEXPECT_EQ(e.nodeid, d.nodeid);
  NASSERT_EQ(c.Lookup(d.nodeid, "..", &e), 0);
  NEXPECT_EQ(e.nodeid, c.root());
  NASSERT_EQ(c.Lookup(c.root(), "..", &e), 0);
  NEXPECT_EQ(e.nodeid, c.root());  // ".." of the root is the root
  // Mutating ops never take "." or "..".
  NEXPECT_EQ(c.Mkdir(d.nodeid, "..", 0755), EINVAL);
  NEXPECT_EQ(c.Unlink(d.nodeid, "."), EINVAL);
  NEXPECT_EQ(c.Rmdir(c.root(), ".."), EINVAL);
  NEXPECT_EQ(c.Rename(d.nodeid, "..", c.root(), "x"), EINVAL);
}

NTEST(PassthroughEntry, MalformedArgumentsGetEinval) {
  TempDir dir;
  PtClient c(dir.path());
  // A name without its NUL, an empty name, a RENAME without the second name, short fixed args.
  NEXPECT_EQ(c.Send(PtReq(FUSE_LOOKUP, c.root()).Raw("abc")).error, EINVAL);
  NEXPECT_EQ(c.Send(PtReq(FUSE_LOOKUP, c.root()).Name("")).error, EINVAL);
  fuse_rename_in rn{c.root()};
  NEXPECT_EQ(c.Send(PtReq(FUSE_RENAME, c.root()).Arg(rn).Name("a")).error, EINVAL);
  NEXPECT_EQ(c.Send(PtReq(FUSE_MKDIR, c.root()).Raw("xy")).error, EINVAL);
  NEXPECT_EQ(c.Send(PtReq(FUSE_SETATTR, c.root()).Raw("short")).error, EINVAL);
  // Session business and unknown opcodes.
  NEXPECT_EQ(c.Send(PtReq(FUSE_INIT, 0)).error, ENOSYS);
  NEXPECT_EQ(c.Send(PtReq(FUSE_IOCTL, c.root())).error, ENOSYS);
  NEXPECT_EQ(c.Send(PtReq(4000, c.root())).error, ENOSYS);
  // An entry reply that cannot fit is EIO and takes no lookup reference.
  NASSERT_TRUE(WriteFileAt(dir.File("f"), ""));
  auto r = c.Send(PtReq(FUSE_LOOKUP, c.root()).Name("f"), 64);
  NEXPECT_EQ(r.error, EIO);
  NEXPECT_EQ(c.fs->Stats().inodes, 1u);
}
