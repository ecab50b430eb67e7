// FuseSession: INIT negotiation, native routes, upcalls and the exactly-once answer rules, with
// golden reply bytes written from the wire layout (offsets), not from the structs under test.
#include <fcntl.h>
#include <sys/stat.h>

#include "fuse/session.h"
#include "fuse_testing.h"
#include "testing.h"

namespace nydus::testing {
namespace {

using fuse::FuseSession;

// Checks fuse_attr at `off` against EntryRecord's values (offsets from linux/fuse.h layout).
void ExpectAttr(const std::vector<uint8_t>& b, size_t off, uint64_t ino, uint32_t mode,
                uint64_t size) {
  NEXPECT_EQ(U64At(b, off + 0), ino);
  NEXPECT_EQ(U64At(b, off + 8), size);
  NEXPECT_EQ(U64At(b, off + 16), 8u);
  NEXPECT_EQ(U64At(b, off + 24), 1700000000u);
  NEXPECT_EQ(U64At(b, off + 32), 1700000001u);
  NEXPECT_EQ(U64At(b, off + 40), 1700000002u);
  NEXPECT_EQ(U32At(b, off + 48), 5u);
  NEXPECT_EQ(U32At(b, off + 52), 6u);
  NEXPECT_EQ(U32At(b, off + 56), 7u);
  NEXPECT_EQ(U32At(b, off + 60), mode);
  NEXPECT_EQ(U32At(b, off + 64), 1u);
  NEXPECT_EQ(U32At(b, off + 68), 1000u);
  NEXPECT_EQ(U32At(b, off + 72), 100u);
  NEXPECT_EQ(U32At(b, off + 80), 4096u);
}

NTEST(FuseSession, InitNegotiatesReadOnlyFlags) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  auto rep = InitSession(s);
  NASSERT_EQ(rep.size(), 80u);
  NEXPECT_EQ(U32At(rep, 0), 80u);
  NEXPECT_EQ(I32At(rep, 4), 0);
  NEXPECT_EQ(U64At(rep, 8), 1u);
  NEXPECT_EQ(U32At(rep, 16), 7u);   // major
  NEXPECT_EQ(U32At(rep, 20), 38u);  // minor
  NEXPECT_EQ(U32At(rep, 24), 0x20000u);
  // ASYNC_READ | DO_READDIRPLUS | READDIRPLUS_AUTO | PARALLEL_DIROPS | MAX_PAGES |
  // CACHE_SYMLINKS | INIT_EXT, all offered by the 6.1 kernel.
  NEXPECT_EQ(U32At(rep, 28), (1u << 0) | (1u << 13) | (1u << 14) | (1u << 18) | (1u << 22) |
                                 (1u << 23) | (1u << 30));
  NEXPECT_EQ(U32At(rep, 36), 1u << 20);       // max_write
  NEXPECT_EQ(U32At(rep, 40), 1u);             // time_gran
  NEXPECT_EQ(rep[44] | (rep[45] << 8), 256);  // max_pages
  NEXPECT_EQ(U32At(rep, 48), 0u);             // flags2: nothing wanted from bits 32+
  NEXPECT_TRUE(s.initialized());
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(ups[0].opcode(), fuse::kUpcallInit);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA0], 38);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA2], 0);  // not a reinit
}

NTEST(FuseSession, InitOldMinorGetsCompatSizeAndNoPlusWithoutHandler) {
  CountingListener l;
  fuse::SessionOptions o;
  o.handler_ops.set(FUSE_LOOKUP);
  FuseSession s(o, &l);
  auto rep = InitSession(s, 22);
  NASSERT_EQ(rep.size(), 16u + 24u);
  NEXPECT_EQ(U32At(rep, 20), 22u);
  NEXPECT_EQ(U32At(rep, 28) & (1u << 13), 0u);  // no READDIRPLUS without a handler for it
  Harness hs2(o);
  auto& s2 = *hs2.s;
  auto bad = InitSession(s2, 12);
  NASSERT_EQ(bad.size(), 16u);
  NEXPECT_EQ(I32At(bad, 4), -EPROTO);
  NEXPECT_FALSE(s2.initialized());
}

NTEST(FuseSession, RequestsBeforeInitFailWithEio) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  auto& r = hs.Req(ReqBuilder(FUSE_LOOKUP, 9).Name("a").Bytes(), 256);
  s.OnRequest(&r);
  NEXPECT_EQ(r.completions(), 1);
  NEXPECT_EQ(r.written(), 16u);
  NEXPECT_EQ(r.header().error, -EIO);
  NEXPECT_EQ(r.header().unique, 9u);
  fuse_forget_in f{3};
  auto& fg = hs.Req(ReqBuilder(FUSE_FORGET, 10, 5).Arg(f).Bytes(), 0);
  s.OnRequest(&fg);
  NEXPECT_EQ(fg.completions(), 1);
  NEXPECT_EQ(fg.written(), 0u);
}

NTEST(FuseSession, NativeRoutes) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  struct Case {
    uint32_t op;
    int err;
  } cases[] = {{FUSE_MKDIR, -EROFS},
               {FUSE_WRITE, -EROFS},
               {FUSE_SETATTR, -EROFS},
               {FUSE_CREATE, -EROFS},
               {FUSE_UNLINK, -EROFS},
               {FUSE_RENAME2, -EROFS},
               {FUSE_SETXATTR, -EROFS},
               {FUSE_TMPFILE, -EROFS},
               {FUSE_SETUPMAPPING, -ENOSYS},
               {FUSE_REMOVEMAPPING, -ENOSYS},
               {FUSE_GETLK, -ENOSYS},
               {FUSE_IOCTL, -ENOSYS},
               {FUSE_SYNCFS, -ENOSYS},
               {7, -ENOSYS},
               {19, -ENOSYS},
               {4096, -ENOSYS},
               {999999, -ENOSYS}};
  uint64_t unique = 100;
  for (const auto& c : cases) {
    auto& r = hs.Req(ReqBuilder(c.op, ++unique).Raw(std::string(64, 'x')).Bytes(), 256);
    s.OnRequest(&r);
    NEXPECT_EQ(r.completions(), 1);
    NEXPECT_EQ(r.written(), 16u);
    NEXPECT_EQ(r.header().len, 16u);
    NEXPECT_EQ(r.header().error, c.err);
    NEXPECT_EQ(r.header().unique, unique);
  }
  // OPEN for writing is refused natively.
  fuse_open_in oi{O_RDWR, 0};
  auto& w = hs.Req(ReqBuilder(FUSE_OPEN, 200, 2).Arg(oi).Bytes(), 64);
  s.OnRequest(&w);
  NEXPECT_EQ(w.header().error, -EROFS);
  // No-reply ops complete with 0 bytes.
  for (uint32_t op : {FUSE_INTERRUPT, FUSE_NOTIFY_REPLY}) {
    auto& r = hs.Req(ReqBuilder(op, 300).Arg(uint64_t{5}).Bytes(), 64);
    s.OnRequest(&r);
    NEXPECT_EQ(r.completions(), 1);
    NEXPECT_EQ(r.written(), 0u);
  }
  NEXPECT_TRUE(DrainAll(s).empty());
}

NTEST(FuseSession, MalformedRequests) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  // Fewer than 40 bytes: nothing to answer.
  auto& tiny = hs.Req(std::vector<uint8_t>(20, 0), 64);
  s.OnRequest(&tiny);
  NEXPECT_EQ(tiny.completions(), 1);
  NEXPECT_EQ(tiny.written(), 0u);
  // len larger than the readable bytes; len below the header size.
  for (uint32_t len : {4096u, 12u}) {
    auto& r = hs.Req(ReqBuilder(FUSE_LOOKUP, 5).Name("abc").Len(len).Bytes(), 64);
    s.OnRequest(&r);
    NEXPECT_EQ(r.header().error, -EINVAL);
  }
  // Extensions longer than the body.
  auto& ext = hs.Req(ReqBuilder(FUSE_GETATTR, 6).Arg(fuse_getattr_in{}).Extlen(10).Bytes(), 256);
  s.OnRequest(&ext);
  NEXPECT_EQ(ext.header().error, -EINVAL);
  // Short fixed args.
  auto& shortr = hs.Req(ReqBuilder(FUSE_READ, 7).Raw("12345678").Bytes(), 256);
  s.OnRequest(&shortr);
  NEXPECT_EQ(shortr.header().error, -EINVAL);
  // Name without NUL; empty name; a 2000-byte name.
  auto& nonul = hs.Req(ReqBuilder(FUSE_LOOKUP, 8).Raw("abc").Bytes(), 256);
  s.OnRequest(&nonul);
  NEXPECT_EQ(nonul.header().error, -EINVAL);
  auto& empty = hs.Req(ReqBuilder(FUSE_LOOKUP, 9).Name("").Bytes(), 256);
  s.OnRequest(&empty);
  NEXPECT_EQ(empty.header().error, -EINVAL);
  auto& longn = hs.Req(ReqBuilder(FUSE_LOOKUP, 10).Name(std::string(2000, 'n')).Bytes(), 256);
  s.OnRequest(&longn);
  NEXPECT_EQ(longn.header().error, -ENAMETOOLONG);
  // A malformed FORGET is still never answered.
  auto& fg = hs.Req(ReqBuilder(FUSE_FORGET, 11).Raw("xy").Bytes(), 64);
  s.OnRequest(&fg);
  NEXPECT_EQ(fg.written(), 0u);
  NEXPECT_EQ(DrainAll(s).size(), 1u);  // only the INIT notification
  NEXPECT_GE(s.Stats().bad_requests, 8u);
}

NTEST(FuseSession, LookupUpcallGoldenReplyAndExactlyOnce) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  // Scattered both ways: 3-byte readable slices, 16 + 7-byte writable pieces.
  auto& r = hs.Req(ReqBuilder(FUSE_LOOKUP, 77, 1).Name("hello").Bytes(), 16 + 128, 3, 7);
  s.OnRequest(&r);
  NEXPECT_EQ(r.completions(), 0);
  NEXPECT_GE(hs.l.wakes.load(), 1);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(ups[0].opcode(), static_cast<uint32_t>(FUSE_LOOKUP));
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kNodeid], 1);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kUid], 1000);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kPid], 42);
  NEXPECT_EQ(std::string(ups[0].bytes.begin(), ups[0].bytes.end()), "hello");
  auto rec = EntryRecord(5, S_IFREG | 0644, 12345);
  NEXPECT_EQ(s.ReplyEntry(ups[0].token(), rec.data()), 0);
  NASSERT_EQ(r.completions(), 1);
  auto b = r.reply();
  NASSERT_EQ(b.size(), 144u);
  NEXPECT_EQ(U32At(b, 0), 144u);
  NEXPECT_EQ(I32At(b, 4), 0);
  NEXPECT_EQ(U64At(b, 8), 77u);
  NEXPECT_EQ(U64At(b, 16), 5u);  // nodeid
  NEXPECT_EQ(U64At(b, 24), 7u);  // generation
  NEXPECT_EQ(U64At(b, 32), 1u);  // entry_valid
  NEXPECT_EQ(U64At(b, 40), 2u);  // attr_valid
  NEXPECT_EQ(U32At(b, 48), 500000000u);
  NEXPECT_EQ(U32At(b, 52), 250000000u);
  ExpectAttr(b, 56, 5, S_IFREG | 0644, 12345);
  // A second answer to the same token is ignored and does not complete again.
  NEXPECT_EQ(s.ReplyError(ups[0].token(), ENOENT), -ESTALE);
  NEXPECT_EQ(r.completions(), 1);
  NEXPECT_EQ(s.Stats().stale_replies, 1u);
}

NTEST(FuseSession, GarbageAndMismatchedAnswersBecomeEio) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& a = hs.Req(ReqBuilder(FUSE_LOOKUP, 1).Name("x").Bytes(), 256);
  auto& b = hs.Req(ReqBuilder(FUSE_GETATTR, 2, 3).Arg(fuse_getattr_in{}).Bytes(), 256);
  auto& c = hs.Req(ReqBuilder(FUSE_STATFS, 3).Bytes(), 256);
  auto& d = hs.Req(ReqBuilder(FUSE_LOOKUP, 4).Name("y").Bytes(), 256);
  for (auto* r : {&a, &b, &c, &d}) s.OnRequest(r);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 4u);
  auto bad = EntryRecord(5, 0777 /* no file type */, 1);
  NEXPECT_EQ(s.ReplyEntry(ups[0].token(), bad.data()), -EINVAL);
  auto rec = EntryRecord(5, S_IFDIR | 0755, 1);
  NEXPECT_EQ(s.ReplyEntry(ups[1].token(), rec.data()), -EINVAL);  // entry for a GETATTR
  NEXPECT_EQ(s.ReplyError(ups[2].token(), 0), -EINVAL);           // errno 0 is no error
  rec[EntrySlot::kSize] = 1.5;                                    // fractional size
  NEXPECT_EQ(s.ReplyEntry(ups[3].token(), rec.data()), -EINVAL);
  for (auto* r : {&a, &b, &c, &d}) {
    NEXPECT_EQ(r->completions(), 1);
    NEXPECT_EQ(r->header().error, -EIO);
    NEXPECT_EQ(r->written(), 16u);
  }
  NEXPECT_EQ(s.Stats().garbage_replies, 4u);
}

NTEST(FuseSession, ReplyLargerThanWritableSpace) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& small = hs.Req(ReqBuilder(FUSE_LOOKUP, 1).Name("x").Bytes(), 64);  // entry needs 144
  auto& none = hs.Req(ReqBuilder(FUSE_LOOKUP, 2).Name("y").Bytes(), 8);    // not even a header
  s.OnRequest(&small);
  s.OnRequest(&none);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 2u);
  auto rec = EntryRecord(5, S_IFREG | 0644, 1);
  NEXPECT_EQ(s.ReplyEntry(ups[0].token(), rec.data()), 0);
  NEXPECT_EQ(s.ReplyEntry(ups[1].token(), rec.data()), 0);
  NEXPECT_EQ(small.written(), 16u);
  NEXPECT_EQ(small.header().error, -EIO);
  NEXPECT_EQ(none.completions(), 1);
  NEXPECT_EQ(none.written(), 0u);
  // Nothing was written past the 8 writable bytes' worth (the buffer is exactly that big).
  NEXPECT_EQ(none.out_bytes_buf().size(), 8u);
  NEXPECT_EQ(s.Stats().reply_overflows, 2u);
}

NTEST(FuseSession, SecondInitResetsAndFailsPending) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& r = hs.Req(ReqBuilder(FUSE_LOOKUP, 5).Name("lost").Bytes(), 256);
  s.OnRequest(&r);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  std::string err;
  s.SetExtents(9, readpath::ExtentTable::FromExtents(10, {}, &err));
  NEXPECT_EQ(s.Stats().extent_tables, 1u);
  auto rep = InitSession(s);
  NEXPECT_EQ(I32At(rep, 4), 0);
  NEXPECT_EQ(r.completions(), 1);
  NEXPECT_EQ(r.header().error, -EIO);
  NEXPECT_EQ(s.ReplyEntry(ups[0].token(), EntryRecord(2, S_IFREG, 0).data()), -ESTALE);
  auto ev = DrainAll(s);
  NASSERT_EQ(ev.size(), 1u);
  NEXPECT_EQ(ev[0].opcode(), fuse::kUpcallInit);
  NEXPECT_EQ(ev[0].rec[UpcallSlot::kA2], 1);  // reinit
  NEXPECT_EQ(s.Stats().extent_tables, 0u);
}

NTEST(FuseSession, DestroyAndResetNotify) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& d = hs.Req(ReqBuilder(FUSE_DESTROY, 5).Bytes(), 64);
  s.OnRequest(&d);
  NEXPECT_EQ(d.written(), 16u);
  NEXPECT_EQ(d.header().error, 0);
  NEXPECT_FALSE(s.initialized());
  auto ev = DrainAll(s);
  NASSERT_EQ(ev.size(), 1u);
  NEXPECT_EQ(ev[0].opcode(), fuse::kUpcallDestroy);
  NEXPECT_EQ(ev[0].rec[UpcallSlot::kA0], abi::kDestroyRequest);
  InitSession(s);
  DrainAll(s);
  s.OnSessionReset();
  ev = DrainAll(s);
  NASSERT_EQ(ev.size(), 1u);
  NEXPECT_EQ(ev[0].rec[UpcallSlot::kA0], abi::kDestroyReset);
  auto& after = hs.Req(ReqBuilder(FUSE_STATFS, 6).Bytes(), 128);
  s.OnRequest(&after);
  NEXPECT_EQ(after.header().error, -EIO);
}

NTEST(FuseSession, ForgetsAreBatchedToTheHandler) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  for (uint64_t n = 2; n < 5; ++n) {
    auto& f = hs.Req(ReqBuilder(FUSE_FORGET, 100 + n, n).Arg(fuse_forget_in{n * 10}).Bytes(), 0);
    s.OnRequest(&f);
    NEXPECT_EQ(f.written(), 0u);
  }
  ReqBuilder bf(FUSE_BATCH_FORGET, 200, 0);
  bf.Arg(fuse_batch_forget_in{3, 0});
  bf.Arg(fuse_forget_one{7, 1}).Arg(fuse_forget_one{1ull << 60, 1}).Arg(fuse_forget_one{9, 2});
  auto& b = hs.Req(bf.Bytes(), 64, 5);
  s.OnRequest(&b);
  NEXPECT_EQ(b.written(), 0u);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);  // coalesced into one record
  NEXPECT_EQ(ups[0].opcode(), fuse::kUpcallForget);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA0], 5);  // the 2^60 nodeid cannot be ours and is dropped
  std::vector<double> pairs(10);
  std::memcpy(pairs.data(), ups[0].bytes.data(), 80);
  NEXPECT_EQ(pairs[0], 2);
  NEXPECT_EQ(pairs[1], 20);
  NEXPECT_EQ(pairs[6], 7);
  NEXPECT_EQ(pairs[8], 9);
  NEXPECT_EQ(pairs[9], 2);
  NEXPECT_EQ(s.Stats().forgets, 6u);
}

NTEST(FuseSession, XattrProbeRangeAndList) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& probe =
      hs.Req(ReqBuilder(FUSE_GETXATTR, 1).Arg(fuse_getxattr_in{0, 0}).Name("user.a").Bytes(), 64);
  auto& small =
      hs.Req(ReqBuilder(FUSE_GETXATTR, 2).Arg(fuse_getxattr_in{3, 0}).Name("user.a").Bytes(), 64);
  auto& ok = hs.Req(
      ReqBuilder(FUSE_GETXATTR, 3).Arg(fuse_getxattr_in{64, 0}).Name("user.a").Bytes(), 16 + 64);
  auto& list = hs.Req(ReqBuilder(FUSE_LISTXATTR, 4).Arg(fuse_getxattr_in{64, 0}).Bytes(), 16 + 64);
  auto& badlist = hs.Req(ReqBuilder(FUSE_LISTXATTR, 5).Arg(fuse_getxattr_in{64, 0}).Bytes(), 80);
  for (auto* r : {&probe, &small, &ok, &list, &badlist}) s.OnRequest(r);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 5u);
  NEXPECT_EQ(std::string(ups[0].bytes.begin(), ups[0].bytes.end()), "user.a");
  NEXPECT_EQ(ups[1].rec[UpcallSlot::kA0], 3);
  const uint8_t value[] = {'v', 'a', 'l', 'u', 'e'};
  for (int i = 0; i < 3; ++i) NEXPECT_EQ(s.ReplyXattr(ups[i].token(), value, 5), 0);
  const uint8_t names[] = "user.a\0user.b";
  NEXPECT_EQ(s.ReplyXattr(ups[3].token(), names, 14), 0);
  NEXPECT_EQ(s.ReplyXattr(ups[4].token(), names, 13), -EINVAL);  // not NUL-terminated
  auto p = probe.reply();
  NASSERT_EQ(p.size(), 24u);
  NEXPECT_EQ(U32At(p, 16), 5u);
  NEXPECT_EQ(small.header().error, -ERANGE);
  auto v = ok.reply();
  NASSERT_EQ(v.size(), 21u);
  NEXPECT_EQ(std::string(v.begin() + 16, v.end()), "value");
  NEXPECT_EQ(list.written(), 30u);
  NEXPECT_EQ(badlist.header().error, -EIO);
}

NTEST(FuseSession, ReaddirPacksWholeRecordsOnly) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  fuse_read_in ri{};
  ri.fh = 3;
  ri.size = 80;  // room for two plain records of 32 bytes, not three
  auto& rd = hs.Req(ReqBuilder(FUSE_READDIR, 1).Arg(ri).Bytes(), 4096);
  ri.size = 4096;
  auto& rp = hs.Req(ReqBuilder(FUSE_READDIRPLUS, 2).Arg(ri).Bytes(), 16 + 400);
  s.OnRequest(&rd);
  s.OnRequest(&rp);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 2u);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA0], 3);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA2], 80);
  std::string names = "a.txtbbbbbbbbc";
  std::vector<double> recs;
  auto add = [&](double ino, double mode, double off, size_t noff, size_t nlen) {
    auto r = EntryRecord(ino, mode, 10);
    r[DirentSlot::kOff] = off;
    r[DirentSlot::kNameOffset] = static_cast<double>(noff);
    r[DirentSlot::kNameLength] = static_cast<double>(nlen);
    r[DirentSlot::kType] = -1;
    recs.insert(recs.end(), r.begin(), r.end());
  };
  add(10, S_IFREG | 0644, 1, 0, 5);
  add(11, S_IFDIR | 0755, 2, 5, 8);
  add(12, S_IFLNK | 0777, 3, 13, 1);
  const auto* nb = reinterpret_cast<const uint8_t*>(names.data());
  NEXPECT_EQ(s.ReplyReaddir(ups[0].token(), recs.data(), 3, nb, names.size()), 2);
  auto b = rd.reply();
  NASSERT_EQ(b.size(), 16u + 32u + 32u);
  NEXPECT_EQ(U64At(b, 16), 10u);  // ino
  NEXPECT_EQ(U64At(b, 24), 1u);   // off
  NEXPECT_EQ(U32At(b, 32), 5u);   // namelen
  NEXPECT_EQ(U32At(b, 36), 8u);   // DT_REG
  NEXPECT_EQ(std::string(b.begin() + 40, b.begin() + 45), "a.txt");
  NEXPECT_EQ(b[45] | b[46] | b[47], 0);  // padding zeroed
  NEXPECT_EQ(U32At(b, 48 + 20), 4u);     // DT_DIR
  // Plus: 152 + name, padded: 160 + 160 = 320 fit into 400, the third (160) does not.
  NEXPECT_EQ(s.ReplyReaddir(ups[1].token(), recs.data(), 3, nb, names.size()), 2);
  auto p = rp.reply();
  NASSERT_EQ(p.size(), 16u + 160u + 160u);
  NEXPECT_EQ(U64At(p, 16), 10u);  // entry nodeid
  ExpectAttr(p, 16 + 40, 10, S_IFREG | 0644, 10);
  NEXPECT_EQ(U64At(p, 16 + 128), 10u);  // dirent ino
  NEXPECT_EQ(U64At(p, 16 + 136), 1u);   // dirent off
  NEXPECT_EQ(std::string(p.begin() + 16 + 152, p.begin() + 16 + 157), "a.txt");
  // Invalid names are rejected as a whole.
  auto& rd2 = hs.Req(ReqBuilder(FUSE_READDIR, 3).Arg(ri).Bytes(), 4096);
  s.OnRequest(&rd2);
  ups = DrainAll(s);
  std::string slash = "a/b";
  recs.resize(DirentSlot::kStride);
  recs[DirentSlot::kNameOffset] = 0;
  recs[DirentSlot::kNameLength] = 3;
  NEXPECT_EQ(s.ReplyReaddir(ups[0].token(), recs.data(), 1,
                            reinterpret_cast<const uint8_t*>(slash.data()), 3),
             -EINVAL);
  NEXPECT_EQ(rd2.header().error, -EIO);
}

NTEST(FuseSession, ShutdownFailsPendingAndLaterAnswersAreStale) {
  Harness hs(AllOps());
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& a = hs.Req(ReqBuilder(FUSE_STATFS, 1).Bytes(), 128);
  auto& b = hs.Req(ReqBuilder(FUSE_READLINK, 2, 4).Bytes(), 128);
  s.OnRequest(&a);
  s.OnRequest(&b);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 2u);
  s.Shutdown();
  NEXPECT_EQ(a.completions(), 1);
  NEXPECT_EQ(b.completions(), 1);
  NEXPECT_EQ(a.header().error, -EIO);
  const uint8_t t[] = {'x'};
  NEXPECT_EQ(s.ReplyData(ups[1].token(), t, 1), -ESTALE);
  NEXPECT_EQ(b.completions(), 1);
  auto& c = hs.Req(ReqBuilder(FUSE_STATFS, 3).Bytes(), 128);
  s.OnRequest(&c);
  NEXPECT_EQ(c.header().error, -EIO);
}

NTEST(FuseSession, UnimplementedHandlerOpsGetNativeDefaults) {
  fuse::SessionOptions o;
  o.handler_ops.set(FUSE_LOOKUP);
  Harness hs(o);
  auto& s = *hs.s;
  InitSession(s);
  DrainAll(s);
  auto& rel = hs.Req(ReqBuilder(FUSE_RELEASE, 1).Arg(fuse_release_in{}).Bytes(), 64);
  auto& fl = hs.Req(ReqBuilder(FUSE_FLUSH, 2).Arg(fuse_flush_in{}).Bytes(), 64);
  auto& st = hs.Req(ReqBuilder(FUSE_STATFS, 3).Bytes(), 128);
  for (auto* r : {&rel, &fl, &st}) s.OnRequest(r);
  NEXPECT_EQ(rel.written(), 16u);
  NEXPECT_EQ(rel.header().error, 0);
  NEXPECT_EQ(fl.header().error, -ENOSYS);
  NEXPECT_EQ(st.header().error, -ENOSYS);
  NEXPECT_TRUE(DrainAll(s).empty());
}

}  // namespace
}  // namespace nydus::testing
