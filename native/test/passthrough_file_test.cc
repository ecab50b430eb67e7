// PassthroughFs: files (OPEN, CREATE, TMPFILE, READ, WRITE over scattered slices, FLUSH,
// RELEASE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE, SYNCFS) and the no_open / writeback modes.
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include "passthrough_testing.h"

using nydus::testing::MemRequest;
using nydus::testing::PtClient;
using nydus::testing::PtReq;
using nydus::testing::ReadFileAt;
using nydus::testing::TempDir;
using nydus::testing::WriteFileAt;

namespace {

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 9)) & 0xff);
  return s;
}

}  // namespace

NTEST(PassthroughFile, CreateWriteReadAcrossScatteredSlices) {
  TempDir dir;
  PtClient c(dir.path());
  fuse_entry_out e{};
  uint64_t fh = 0;
  NASSERT_EQ(c.Create(c.root(), "f", O_RDWR, 0640, &e, &fh), 0);
  NEXPECT_NE(fh, 0u);
  NEXPECT_EQ(e.attr.mode, static_cast<uint32_t>(S_IFREG | 0640));
  NEXPECT_EQ(c.fs->LookupCount(e.nodeid), 1u);
  const std::string data = Pattern(300000, 1);
  uint32_t written = 0;
  // 7-byte slices: the write payload starts mid-slice and crosses hundreds of iovecs (more
  // than IOV_MAX, so pwritev runs in rounds).
  NASSERT_EQ(c.Write(e.nodeid, fh, 0, data, &written, 0, 7), 0);
  NEXPECT_EQ(written, data.size());
  NEXPECT_TRUE(ReadFileAt(dir.File("f")) == data);
  std::string got;
  NASSERT_EQ(c.Read(e.nodeid, fh, 1000, 70000, &got, 13), 0);
  NEXPECT_TRUE(got == data.substr(1000, 70000));
  // Short read at the end of the file; nothing past it.
  NASSERT_EQ(c.Read(e.nodeid, fh, data.size() - 10, 4096, &got), 0);
  NEXPECT_EQ(got.size(), 10u);
  NASSERT_EQ(c.Read(e.nodeid, fh, data.size() + 10, 4096, &got), 0);
  NEXPECT_EQ(got.size(), 0u);
  // A READ larger than the writable space reads what fits.
  fuse_read_in rin{fh, 0, 1 << 20, 0, 0, 0, 0};
  auto r = c.Send(PtReq(FUSE_READ, e.nodeid).Arg(rin), 16 + 100);
  NEXPECT_EQ(r.error, 0);
  NEXPECT_EQ(r.body.size(), 100u);
  // O_DIRECT from the guest is not passed on (misaligned reply buffers would be EINVAL).
  uint64_t dfh = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_RDONLY | O_DIRECT, &dfh), 0);
  NASSERT_EQ(c.Read(e.nodeid, dfh, 3, 5000, &got, 7), 0);
  NEXPECT_TRUE(got == data.substr(3, 5000));
  NEXPECT_EQ(c.Release(e.nodeid, dfh), 0);
  // Unknown handle, or a handle of another node.
  NEXPECT_EQ(c.Read(e.nodeid, 987654, 0, 10, &got), EBADF);
  NEXPECT_EQ(c.Read(c.root(), fh, 0, 10, &got), EBADF);
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
  NEXPECT_EQ(c.fs->Stats().handles, 0u);
  NEXPECT_EQ(c.Read(e.nodeid, fh, 0, 10, &got), EBADF);
}

NTEST(PassthroughFile, CreateFlagsExclTruncAppend) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("old"), "0123456789"));
  PtClient c(dir.path());
  fuse_entry_out e{};
  uint64_t fh = 0;
  NEXPECT_EQ(c.Create(c.root(), "old", O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
  // Without O_EXCL an entry that exists is opened (as CREATE after a racing create would be).
  NASSERT_EQ(c.Create(c.root(), "old", O_WRONLY | O_CREAT | O_TRUNC, 0644, &e, &fh), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("old")), std::string(""));
  NASSERT_EQ(c.Write(e.nodeid, fh, 0, "abc"), 0);
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
  // O_APPEND: writes land at the end whatever the offset says (no writeback negotiated).
  uint64_t afh = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_WRONLY | O_APPEND, &afh), 0);
  NASSERT_EQ(c.Write(e.nodeid, afh, 0, "XYZ"), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("old")), std::string("abcXYZ"));
  // A read on a write-only handle is the host's EBADF.
  std::string got;
  NEXPECT_EQ(c.Read(e.nodeid, afh, 0, 10, &got), EBADF);
  NEXPECT_EQ(c.Release(e.nodeid, afh), 0);
  // OPEN with O_TRUNC (FUSE_ATOMIC_O_TRUNC).
  uint64_t tfh = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_RDWR | O_TRUNC, &tfh), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("old")), std::string(""));
  NEXPECT_EQ(c.Write(e.nodeid, tfh, 0, "q", nullptr), 0);
  NEXPECT_EQ(c.Release(e.nodeid, tfh), 0);
  // CREATE on a directory name / under a file.
  NASSERT_EQ(mkdir(dir.File("d").c_str(), 0755), 0);
  NEXPECT_EQ(c.Create(c.root(), "d", O_RDWR, 0644), EISDIR);
  NEXPECT_EQ(c.Create(e.nodeid, "x", O_RDWR, 0644), ENOTDIR);
  NEXPECT_EQ(c.fs->Stats().handles, 0u);
}

NTEST(PassthroughFile, OpenByTypeAndReleaseOfUnknownHandles) {
  TempDir dir;
  NASSERT_EQ(mkdir(dir.File("d").c_str(), 0755), 0);
  NASSERT_EQ(mkfifo(dir.File("fifo").c_str(), 0666), 0);
  NASSERT_EQ(symlink("d", dir.File("l").c_str()), 0);
  PtClient c(dir.path());
  fuse_entry_out d{}, fifo{}, l{};
  NASSERT_EQ(c.Lookup(c.root(), "d", &d), 0);
  NASSERT_EQ(c.Lookup(c.root(), "fifo", &fifo), 0);
  NASSERT_EQ(c.Lookup(c.root(), "l", &l), 0);
  uint64_t fh = 0;
  // A FIFO is never opened on the host (it would block a queue thread or meet host processes).
  NEXPECT_EQ(c.Open(fifo.nodeid, O_RDONLY, &fh), EACCES);
  NEXPECT_EQ(c.Open(l.nodeid, O_RDONLY, &fh), ELOOP);
  NEXPECT_EQ(c.Open(d.nodeid, O_WRONLY, &fh), EISDIR);
  NASSERT_EQ(c.Open(d.nodeid, O_RDONLY, &fh), 0);
  NEXPECT_EQ(c.Release(d.nodeid, fh), 0);
  NEXPECT_EQ(c.Release(d.nodeid, 0), 0);
  NEXPECT_EQ(c.Release(d.nodeid, 424242), 0);
}

NTEST(PassthroughFile, FlushFsyncFallocateLseekCopyFileRangeSyncfs) {
  TempDir dir;
  PtClient c(dir.path());
  fuse_entry_out a{}, b{};
  uint64_t fa = 0, fb = 0;
  NASSERT_EQ(c.Create(c.root(), "a", O_RDWR, 0644, &a, &fa), 0);
  NASSERT_EQ(c.Create(c.root(), "b", O_RDWR, 0644, &b, &fb), 0);
  const std::string data = Pattern(64 * 1024, 3);
  NASSERT_EQ(c.Write(a.nodeid, fa, 0, data), 0);

  fuse_flush_in fl{fa, 0, 0, 77};
  NEXPECT_EQ(c.Send(PtReq(FUSE_FLUSH, a.nodeid).Arg(fl)).error, 0);
  fuse_fsync_in fs{fa, FUSE_FSYNC_FDATASYNC, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_FSYNC, a.nodeid).Arg(fs)).error, 0);
  fs.fsync_flags = 0;
  NEXPECT_EQ(c.Send(PtReq(FUSE_FSYNC, a.nodeid).Arg(fs)).error, 0);

  // A hole at the end: lseek finds data at 0 and a hole from 64 KiB.
  fuse_fallocate_in fa_in{fa, 1 << 20, 4096, FALLOC_FL_KEEP_SIZE, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_FALLOCATE, a.nodeid).Arg(fa_in)).error, 0);
  fuse_fallocate_in grow{fa, 0, 256 * 1024, 0, 0};
  NEXPECT_EQ(c.Send(PtReq(FUSE_FALLOCATE, a.nodeid).Arg(grow)).error, 0);
  struct stat st;
  NASSERT_EQ(stat(dir.File("a").c_str(), &st), 0);
  NEXPECT_EQ(st.st_size, 256 * 1024);
  fuse_lseek_in ls{fa, 0, SEEK_DATA, 0};
  auto r = c.Send(PtReq(FUSE_LSEEK, a.nodeid).Arg(ls));
  NEXPECT_EQ(r.error, 0);
  NEXPECT_EQ(r.As<fuse_lseek_out>().offset, 0u);
  ls.offset = 300 * 1024;
  NEXPECT_EQ(c.Send(PtReq(FUSE_LSEEK, a.nodeid).Arg(ls)).error, ENXIO);
  ls.whence = SEEK_CUR;
  NEXPECT_EQ(c.Send(PtReq(FUSE_LSEEK, a.nodeid).Arg(ls)).error, EINVAL);

  fuse_copy_file_range_in cr{fa, 1000, b.nodeid, fb, 0, 5000, 0};
  r = c.Send(PtReq(FUSE_COPY_FILE_RANGE, a.nodeid).Arg(cr));
  NEXPECT_EQ(r.error, 0);
  NEXPECT_EQ(r.As<fuse_write_out>().size, 5000u);
  NEXPECT_TRUE(ReadFileAt(dir.File("b")) == data.substr(1000, 5000));
  cr.flags = 1;
  NEXPECT_EQ(c.Send(PtReq(FUSE_COPY_FILE_RANGE, a.nodeid).Arg(cr)).error, EINVAL);
  cr.flags = 0;
  cr.nodeid_out = uint64_t{1} << 40;
  NEXPECT_EQ(c.Send(PtReq(FUSE_COPY_FILE_RANGE, a.nodeid).Arg(cr)).error, EXDEV);

  fuse_syncfs_in sy{};
  NEXPECT_EQ(c.Send(PtReq(FUSE_SYNCFS, c.root()).Arg(sy)).error, 0);
  NEXPECT_EQ(c.Release(a.nodeid, fa), 0);
  NEXPECT_EQ(c.Release(b.nodeid, fb), 0);
}

NTEST(PassthroughFile, TmpfileThenLink) {
  TempDir dir;
  PtClient c(dir.path());
  fuse_create_in in{O_RDWR, 0600, 0, 0};
  auto r = c.Send(PtReq(FUSE_TMPFILE, c.root()).Arg(in));
  if (r.error == EOPNOTSUPP) PT_SKIP("no O_TMPFILE on the temp file system");
  NASSERT_EQ(r.error, 0);
  fuse_entry_out e;
  fuse_open_out o;
  std::memcpy(&e, r.body.data(), sizeof(e));
  std::memcpy(&o, r.body.data() + sizeof(e), sizeof(o));
  NEXPECT_EQ(e.attr.nlink, 0u);
  NASSERT_EQ(c.Write(e.nodeid, o.fh, 0, "tmp"), 0);
  NASSERT_EQ(c.Link(e.nodeid, c.root(), "named"), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("named")), std::string("tmp"));
  NEXPECT_EQ(c.Release(e.nodeid, o.fh), 0);
}

NTEST(PassthroughFile, ZeroMessageOpenUsesOneDescriptorPerNode) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "content"));
  PtClient c(dir.path(), nydus::passthrough::KataSharedDirOptions());
  auto wanted = c.fs->WantedInitFlags();
  NEXPECT_TRUE((wanted & FUSE_WRITEBACK_CACHE) != 0);
  NEXPECT_TRUE((wanted & FUSE_ATOMIC_O_TRUNC) == 0);
  c.fs->OnInit(FUSE_NO_OPEN_SUPPORT | FUSE_WRITEBACK_CACHE, FUSE_WRITEBACK_CACHE);
  NEXPECT_TRUE(c.fs->Stats().no_open);
  NEXPECT_TRUE(c.fs->Stats().writeback);
  fuse_entry_out e{};
  NASSERT_EQ(c.Lookup(c.root(), "f", &e), 0);
  uint64_t fh = 99;
  NEXPECT_EQ(c.Open(e.nodeid, O_RDONLY, &fh), ENOSYS);
  std::string got;
  NASSERT_EQ(c.Read(e.nodeid, 0, 0, 100, &got), 0);
  NEXPECT_EQ(got, std::string("content"));
  NASSERT_EQ(c.Write(e.nodeid, 0, 7, "+more"), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("f")), std::string("content+more"));
  // CREATE hands out no handle (the kernel will not RELEASE it); I/O then goes by node.
  fuse_entry_out n{};
  uint64_t nfh = 1;
  NASSERT_EQ(c.Create(c.root(), "new", O_WRONLY | O_APPEND, 0644, &n, &nfh), 0);
  NEXPECT_EQ(nfh, 0u);
  NEXPECT_EQ(c.fs->Stats().handles, 0u);
  NASSERT_EQ(c.Write(n.nodeid, 0, 0, "abc"), 0);
  NASSERT_EQ(c.Write(n.nodeid, 0, 1, "Z"), 0);  // writeback: no O_APPEND, the offset counts
  NEXPECT_EQ(ReadFileAt(dir.File("new")), std::string("aZc"));
  // Truncation by SETATTR without a handle.
  fuse_setattr_in s{};
  s.valid = FATTR_SIZE;
  s.size = 2;
  NEXPECT_EQ(c.Setattr(n.nodeid, s), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("new")), std::string("aZ"));
  // No data descriptor for directories or FIFOs.
  NEXPECT_EQ(c.Read(c.root(), 0, 0, 10, &got), EISDIR);
  NASSERT_EQ(mkfifo(dir.File("p").c_str(), 0644), 0);
  fuse_entry_out p{};
  NASSERT_EQ(c.Lookup(c.root(), "p", &p), 0);
  NEXPECT_EQ(c.Read(p.nodeid, 0, 0, 10, &got), EBADF);
}

NTEST(PassthroughFile, WritebackOpensWriteOnlyAsReadWrite) {
  TempDir dir;
  NASSERT_TRUE(WriteFileAt(dir.File("f"), "abcdef"));
  nydus::passthrough::PassthroughOptions o;
  o.writeback = true;
  PtClient c(dir.path(), o);
  c.fs->OnInit(0, FUSE_WRITEBACK_CACHE);
  fuse_entry_out e{};
  NASSERT_EQ(c.Lookup(c.root(), "f", &e), 0);
  uint64_t fh = 0;
  NASSERT_EQ(c.Open(e.nodeid, O_WRONLY | O_APPEND, &fh), 0);
  std::string got;
  // The kernel reads around partial pages through any handle.
  NASSERT_EQ(c.Read(e.nodeid, fh, 0, 3, &got), 0);
  NEXPECT_EQ(got, std::string("abc"));
  NASSERT_EQ(c.Write(e.nodeid, fh, 1, "X"), 0);
  NEXPECT_EQ(ReadFileAt(dir.File("f")), std::string("aXcdef"));
  NEXPECT_EQ(c.Release(e.nodeid, fh), 0);
}

NTEST(PassthroughFile, OverlongWritePayloadIsMalformed) {
  TempDir dir;
  PtClient c(dir.path());
  fuse_entry_out e{};
  uint64_t fh = 0;
  NASSERT_EQ(c.Create(c.root(), "f", O_RDWR, 0644, &e, &fh), 0);
  fuse_write_in w{};
  w.fh = fh;
  w.size = 100;  // claims more than it carries
  NEXPECT_EQ(c.Send(PtReq(FUSE_WRITE, e.nodeid).Arg(w).Raw("short")).error, EINVAL);
  w.offset = uint64_t{1} << 63;
  w.size = 1;
  NEXPECT_EQ(c.Send(PtReq(FUSE_WRITE, e.nodeid).Arg(w).Raw("x")).error, EINVAL);
  struct stat st;
  NASSERT_EQ(stat(dir.File("f").c_str(), &st), 0);
  NEXPECT_EQ(st.st_size, 0);
}
