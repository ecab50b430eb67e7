// ReplyCache (bounded, keyed by parent + exact name bytes) and the session's use of it: an
// immutable session answers repeats natively and forgets everything on a transport reset.
#include <sys/stat.h>

#include <cstring>
#include <utility>
#include <vector>

#include "fuse/reply_cache.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "testing.h"

namespace nydus::testing {
namespace {

using fuse::FuseSession;
using fuse::ReplyCache;

fuse_entry_out Entry(uint64_t nodeid) {
  fuse_entry_out e{};
  e.nodeid = nodeid;
  e.attr.ino = nodeid;
  return e;
}

NTEST(ReplyCache, KeysAreParentAndExactNameBytes) {
  ReplyCache c;
  c.PutEntry(1, "ab", 2, Entry(10));
  fuse_entry_out e{};
  NEXPECT_TRUE(c.GetEntry(1, "ab", 2, &e));
  NEXPECT_EQ(e.nodeid, 10u);
  NEXPECT_FALSE(c.GetEntry(2, "ab", 2, &e));   // other parent
  NEXPECT_FALSE(c.GetEntry(1, "a", 1, &e));    // prefix
  NEXPECT_FALSE(c.GetEntry(1, "abc", 3, &e));  // longer
  const char with_nul[3] = {'a', '\0', 'b'};
  c.PutEntry(1, with_nul, 3, Entry(11));
  NEXPECT_TRUE(c.GetEntry(1, with_nul, 3, &e));
  NEXPECT_EQ(e.nodeid, 11u);
  // Names past the FUSE limit are never stored or found.
  std::string long_name(fuse::kMaxName + 1, 'x');
  c.PutEntry(1, long_name.data(), long_name.size(), Entry(12));
  NEXPECT_FALSE(c.GetEntry(1, long_name.data(), long_name.size(), &e));
  NEXPECT_EQ(c.entries(), 2u);
}

NTEST(ReplyCache, BoundedAndClearable) {
  ReplyCache c(4);
  for (uint64_t i = 0; i < 4; ++i) {
    fuse_attr_out a{};
    a.attr.ino = i;
    c.PutAttr(i, a);
    c.PutEntry(1, reinterpret_cast<const char*>(&i), sizeof(i), Entry(i));
  }
  NEXPECT_EQ(c.attrs(), 4u);
  NEXPECT_EQ(c.entries(), 4u);
  // The fifth insert starts over instead of growing past the bound.
  fuse_attr_out a{};
  c.PutAttr(99, a);
  NEXPECT_EQ(c.attrs(), 1u);
  NEXPECT_TRUE(c.GetAttr(99, &a));
  NEXPECT_FALSE(c.GetAttr(0, &a));
  c.Clear();
  NEXPECT_EQ(c.attrs(), 0u);
  NEXPECT_EQ(c.entries(), 0u);
  ReplyCache off(0);
  off.PutAttr(1, a);
  NEXPECT_FALSE(off.GetAttr(1, &a));
}

// LOOKUP parent 1 "f": answered from the cache (returns the reply) or by the handler with a
// file of `size` bytes.
std::vector<uint8_t> Lookup(Harness& hs, double size, bool* upcall) {
  auto& r = hs.Req(ReqBuilder(FUSE_LOOKUP, 9, 1).Name("f").Bytes(), 16 + 128);
  hs.s->OnRequest(&r);
  auto ups = DrainAll(*hs.s);
  *upcall = !ups.empty();
  if (*upcall) {
    auto rec = EntryRecord(5, S_IFREG | 0644, size);
    NEXPECT_EQ(hs.s->ReplyEntry(ups[0].token(), rec.data()), 0);
  }
  NEXPECT_EQ(r.completions(), 1);
  return r.reply();
}

NTEST(FuseSession, ImmutableSessionCachesUntilTransportReset) {
  auto o = AllOps();
  o.handler_ops.reset(FUSE_FORGET);
  o.immutable = true;
  Harness hs(o);
  InitSession(*hs.s);
  DrainAll(*hs.s);
  bool upcall = false;
  Lookup(hs, 100, &upcall);
  NEXPECT_TRUE(upcall);
  auto hit = Lookup(hs, 200, &upcall);
  NEXPECT_FALSE(upcall);
  NEXPECT_EQ(U64At(hit, 16 + 40 + 8), 100u);  // attr.size from the first answer
  // GETATTR of the looked-up node comes from the entry.
  auto& g = hs.Req(ReqBuilder(FUSE_GETATTR, 10, 5).Arg(fuse_getattr_in{}).Bytes(), 16 + 104);
  hs.s->OnRequest(&g);
  NEXPECT_TRUE(DrainAll(*hs.s).empty());
  NEXPECT_EQ(g.header().error, 0);
  NEXPECT_EQ(U64At(g.reply(), 16 + 16 + 8), 100u);
  NEXPECT_EQ(hs.s->Stats().cached_replies, 2u);
  // The frontend went away: a new connection starts with an empty cache.
  hs.s->OnSessionReset();
  DrainAll(*hs.s);
  InitSession(*hs.s);
  DrainAll(*hs.s);
  auto fresh = Lookup(hs, 300, &upcall);
  NEXPECT_TRUE(upcall);
  NEXPECT_EQ(U64At(fresh, 16 + 40 + 8), 300u);
}

// The pairs of every FORGET notification drained, in order.
std::vector<std::pair<double, double>> Forgets(const std::vector<Upcall>& ups) {
  std::vector<std::pair<double, double>> out;
  for (const auto& u : ups) {
    if (u.opcode() != fuse::kUpcallForget) continue;
    const size_t n = static_cast<size_t>(u.rec[UpcallSlot::kA0]);
    for (size_t i = 0; i < n && (2 * i + 2) * 8 <= u.bytes.size(); ++i) {
      double p[2];
      std::memcpy(p, u.bytes.data() + i * 16, 16);
      out.emplace_back(p[0], p[1]);
    }
  }
  return out;
}

NTEST(FuseSession, ImmutableForgetHandlerHearsOnlyItsWritableNodes) {
  auto o = AllOps();  // includes FORGET: the handler counts the lookups of its writable nodes
  o.immutable = true;
  Harness hs(o);
  InitSession(*hs.s);
  DrainAll(*hs.s);
  hs.s->SetWritable(40, 50, true);
  bool upcall = false;
  Lookup(hs, 100, &upcall);
  NEXPECT_TRUE(upcall);
  Lookup(hs, 100, &upcall);
  NEXPECT_FALSE(upcall);  // parent 1 is not writable: the cache still answers
  NEXPECT_EQ(hs.s->Stats().cached_replies, 1u);
  auto& f1 = hs.Req(ReqBuilder(FUSE_FORGET, 20, 5).Arg(fuse_forget_in{2}).Bytes(), 64);
  hs.s->OnRequest(&f1);
  auto& f2 = hs.Req(ReqBuilder(FUSE_FORGET, 21, 42).Arg(fuse_forget_in{3}).Bytes(), 64);
  hs.s->OnRequest(&f2);
  fuse_batch_forget_in bf{3, 0};
  fuse_forget_one one[3] = {{45, 1}, {7, 9}, {49, 2}};
  ReqBuilder rb(FUSE_BATCH_FORGET, 22, 0);
  rb.Arg(bf);
  for (const auto& x : one) rb.Arg(x);
  auto& b = hs.Req(rb.Bytes(), 64);
  hs.s->OnRequest(&b);
  const auto got = Forgets(DrainAll(*hs.s));
  const std::vector<std::pair<double, double>> want = {{42, 3}, {45, 1}, {49, 2}};
  NEXPECT_TRUE(got == want);
  NEXPECT_EQ(f1.completions() + f2.completions() + b.completions(), 3);
  NEXPECT_EQ(hs.s->Stats().forgets, 5u);
}

NTEST(FuseSession, MutableForgetHandlerHearsEveryNode) {
  Harness hs(AllOps());
  InitSession(*hs.s);
  DrainAll(*hs.s);
  bool upcall = false;
  Lookup(hs, 100, &upcall);
  Lookup(hs, 100, &upcall);
  NEXPECT_TRUE(upcall);
  NEXPECT_EQ(hs.s->Stats().cached_replies, 0u);
  auto& f = hs.Req(ReqBuilder(FUSE_FORGET, 20, 5).Arg(fuse_forget_in{2}).Bytes(), 64);
  hs.s->OnRequest(&f);
  const auto got = Forgets(DrainAll(*hs.s));
  NASSERT_EQ(got.size(), 1u);
  NEXPECT_EQ(got[0].first, 5);
}

}  // namespace
}  // namespace nydus::testing
