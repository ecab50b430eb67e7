// The session's writable route (fuse/session_writable.cc, writable_ranges.h): mutating requests
// on nodes of a writable range are decoded into the upcall's payload — also when the guest's
// buffers are scattered into tiny slices — and answered by the handler; malformed ones get an
// errno inline; outside the ranges they stay EROFS; CREATE and WRITE replies have their wire
// layouts; a writable node's LOOKUP is never answered from the reply cache.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include "fuse_testing.h"
#include "testing.h"

namespace nydus::testing {
namespace {

double NumAt(const Upcall& u, size_t i) {
  double d = 0;
  std::memcpy(&d, u.bytes.data() + i * 8, 8);
  return d;
}

// An initialized session with every handler op and [lo, hi) writable.
fuse::FuseSession& Started(Harness& hs, uint64_t lo, uint64_t hi) {
  InitSession(*hs.s);
  DrainAll(*hs.s);
  hs.s->SetWritable(lo, hi, true);
  return *hs.s;
}

NTEST(FuseWritable, DecodedIntoThePayloadThroughScatteredSlices) {
  Harness hs(AllOps());
  auto& s = Started(hs, 10, 20);
  fuse_write_in wi{};
  wi.fh = 9;
  wi.offset = 4096;
  wi.size = 5;
  auto& w = hs.Req(ReqBuilder(FUSE_WRITE, 2, 12).Arg(wi).Raw("hello").Bytes(), 64, 3);
  s.OnRequest(&w);
  fuse_rename2_in ri{};
  ri.newdir = 15;
  ri.flags = 1;
  auto& rn = hs.Req(ReqBuilder(FUSE_RENAME2, 3, 11).Arg(ri).Name("old").Name("new").Bytes(), 64, 1);
  s.OnRequest(&rn);
  fuse_setattr_in sa{};
  sa.valid = FATTR_SIZE | FATTR_MODE;
  sa.size = 77;
  sa.mode = 0600;
  auto& st = hs.Req(ReqBuilder(FUSE_SETATTR, 4, 13).Arg(sa).Bytes(), 256, 7);
  s.OnRequest(&st);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 3u);
  NEXPECT_EQ(ups[0].opcode(), static_cast<uint32_t>(FUSE_WRITE));
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA0], 4);  // numbers
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA3], 5);  // data bytes
  NEXPECT_EQ(NumAt(ups[0], 0), 9);
  NEXPECT_EQ(NumAt(ups[0], 1), 4096);
  NEXPECT_EQ(std::string(ups[0].bytes.begin() + 32, ups[0].bytes.end()), "hello");
  NEXPECT_EQ(ups[1].rec[UpcallSlot::kA1], 3);
  NEXPECT_EQ(ups[1].rec[UpcallSlot::kA2], 3);
  NEXPECT_EQ(NumAt(ups[1], 0), 15);
  NEXPECT_EQ(NumAt(ups[1], 1), 1);
  NEXPECT_EQ(std::string(ups[1].bytes.begin() + 16, ups[1].bytes.end()), "oldnew");
  NEXPECT_EQ(NumAt(ups[2], 0), FATTR_SIZE | FATTR_MODE);
  NEXPECT_EQ(NumAt(ups[2], 2), 77);
  NEXPECT_EQ(NumAt(ups[2], 7), 0600);

  NEXPECT_EQ(s.ReplyWrite(ups[0].token(), 6), -EINVAL);  // more than was sent: EIO to the guest
  NEXPECT_EQ(w.header().error, -EIO);
  NEXPECT_EQ(s.ReplyOk(ups[1].token()), 0);
  NEXPECT_EQ(rn.header().error, 0);
  auto rec = EntryRecord(13, S_IFREG | 0600, 77);
  NEXPECT_EQ(s.ReplyAttr(ups[2].token(), rec.data()), 0);
  NEXPECT_EQ(st.header().len, 16u + sizeof(fuse_attr_out));
}

NTEST(FuseWritable, CreateAndWriteReplies) {
  Harness hs(AllOps());
  auto& s = Started(hs, 1, 2);
  fuse_create_in ci{};
  ci.flags = O_WRONLY | O_CREAT;
  ci.mode = S_IFREG | 0644;
  auto& c = hs.Req(ReqBuilder(FUSE_CREATE, 2, 1).Arg(ci).Name("f").Bytes(), 256);
  s.OnRequest(&c);
  fuse_write_in wi{};
  wi.size = 3;
  auto& w = hs.Req(ReqBuilder(FUSE_WRITE, 3, 1).Arg(wi).Raw("abc").Bytes(), 64);
  s.OnRequest(&w);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 2u);
  auto rec = EntryRecord(40, S_IFREG | 0644, 0);
  NEXPECT_EQ(s.ReplyCreate(ups[0].token(), rec.data(), 55, FOPEN_KEEP_CACHE), 0);
  const auto reply = c.reply();
  NASSERT_EQ(reply.size(), 16u + sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  NEXPECT_EQ(U64At(reply, 16), 40u);
  NEXPECT_EQ(U64At(reply, 16 + sizeof(fuse_entry_out)), 55u);
  NEXPECT_EQ(U32At(reply, 16 + sizeof(fuse_entry_out) + 8),
             static_cast<uint32_t>(FOPEN_KEEP_CACHE));
  NEXPECT_EQ(s.ReplyWrite(ups[1].token(), 3), 0);
  NEXPECT_EQ(w.header().len, 24u);
  NEXPECT_EQ(U32At(w.reply(), 16), 3u);
}

NTEST(FuseWritable, MalformedAndOutsideTheRangesNeverReachTheHandler) {
  Harness hs(AllOps());
  auto& s = Started(hs, 10, 20);
  fuse_write_in big{};
  big.size = 1000;  // more than the request carries
  // Without FUSE_SETXATTR_EXT the kernel sends size and flags only (8 bytes).
  const uint32_t sx[2] = {70000, 0};
  struct Case {
    std::vector<uint8_t> bytes;
    int err;
  } cases[] = {
      {ReqBuilder(FUSE_MKDIR, 5, 30).Arg(fuse_mkdir_in{}).Name("d").Bytes(), -EROFS},
      {ReqBuilder(FUSE_MKDIR, 6, 12).Raw("abc").Bytes(), -EINVAL},
      {ReqBuilder(FUSE_MKDIR, 7, 12).Arg(fuse_mkdir_in{}).Raw("noterm").Bytes(), -EINVAL},
      {ReqBuilder(FUSE_UNLINK, 8, 12).Name(std::string(2000, 'n')).Bytes(), -ENAMETOOLONG},
      {ReqBuilder(FUSE_WRITE, 9, 12).Arg(big).Raw("abc").Bytes(), -EINVAL},
      {ReqBuilder(FUSE_SETXATTR, 10, 12).Arg(sx).Name("user.x").Bytes(), -E2BIG},
      {ReqBuilder(FUSE_SYMLINK, 11, 12).Name("only").Bytes(), -EINVAL},
      {ReqBuilder(FUSE_COPY_FILE_RANGE, 12, 12).Raw(std::string(56, 0)).Bytes(), -ENOSYS},
  };
  for (auto& c : cases) {
    auto& r = hs.Req(c.bytes, 64, 2);
    s.OnRequest(&r);
    NEXPECT_EQ(r.completions(), 1);
    NEXPECT_EQ(r.header().error, c.err);
  }
  NEXPECT_TRUE(DrainAll(s).empty());
  // Still serving: a good one goes up.
  auto& ok = hs.Req(ReqBuilder(FUSE_UNLINK, 20, 12).Name("x").Bytes(), 64);
  s.OnRequest(&ok);
  NEXPECT_EQ(DrainAll(s).size(), 1u);
  s.SetWritable(10, 20, false);
  auto& ro = hs.Req(ReqBuilder(FUSE_UNLINK, 21, 12).Name("x").Bytes(), 64);
  s.OnRequest(&ro);
  NEXPECT_EQ(ro.header().error, -EROFS);
}

NTEST(FuseWritable, LookupsOfWritableNodesAreNotCached) {
  Harness hs(ImmutableOps());
  auto& s = Started(hs, 0, 0);  // nothing writable yet
  auto lookup = [&](uint64_t unique) {
    auto& r = hs.Req(ReqBuilder(FUSE_LOOKUP, unique, 1).Name("a").Bytes(), 256);
    s.OnRequest(&r);
    auto ups = DrainAll(s);
    if (ups.empty()) return 0;
    auto rec = EntryRecord(5, S_IFREG | 0644, 1);
    NEXPECT_EQ(s.ReplyEntry(ups[0].token(), rec.data()), 0);
    return 1;
  };
  NEXPECT_EQ(lookup(2), 1);
  NEXPECT_EQ(lookup(3), 0);  // answered from the cache
  s.SetWritable(1, 2, true);
  NEXPECT_EQ(lookup(4), 1);  // the cache was cleared for the range and is not used there
  NEXPECT_EQ(lookup(5), 1);
}

}  // namespace
}  // namespace nydus::testing
