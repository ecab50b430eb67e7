// Native filesystems inside the FUSE session (fuse/native_mounts.h, session_native.cc): requests
// on an owned node range are served inline and never reach the handler, FORGET/BATCH_FORGET are
// split by owner, INIT asks for what they want and passes the negotiated flags on (without the
// connection-wide zero-message OPEN unless the filesystem is the whole connection), INTERRUPT,
// SYNCFS and resets reach them, a detach lets a request already inside finish before the
// filesystem is freed, and a mount point's entry is never cached. A real PassthroughFs behind
// the session writes to its host directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "fuse/native_mounts.h"
#include "fuse/reply.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "passthrough/pt_native.h"
#include "passthrough_testing.h"
#include "testing.h"

namespace nydus::testing {
namespace {

constexpr uint64_t kRange = 1ull << 44;
constexpr uint64_t kLo = kRange + 1;  // mount slot 1's root
constexpr uint64_t kHi = 2 * kRange;

// Records what the session tells it; answers every request with an empty success (GETATTR
// can be held until released, to test detaching with a request inside).
class FakeFs final : public fuse::NativeFs {
 public:
  ~FakeFs() override { destroyed->store(true); }
  Outcome Handle(const fuse::DecodedRequest& d, transport::FuseRequest& req) override {
    handled.fetch_add(1);
    last_opcode.store(d.in.opcode);
    if (hold && d.in.opcode == FUSE_GETATTR) {
      std::unique_lock lock(mu);
      inside = true;
      cv.notify_all();
      cv.wait(lock, [this] { return released; });
    }
    return Outcome{fuse::WriteReply(req, d.in.unique, nullptr, 0), false, false};
  }
  void Forget(uint64_t nodeid, uint64_t nlookup) override {
    std::lock_guard lock(mu);
    forgets.emplace_back(nodeid, nlookup);
  }
  bool Interrupt(uint64_t unique) override {
    interrupted.store(unique);
    return true;
  }
  void Reset() override { resets.fetch_add(1); }
  int Syncfs() override {
    syncs.fetch_add(1);
    return 0;
  }
  uint64_t WantedInitFlags() const override { return FUSE_WRITEBACK_CACHE; }
  void OnInit(uint64_t kernel_flags, uint64_t granted_flags) override {
    inits.fetch_add(1);
    kernel.store(kernel_flags);
    granted.store(granted_flags);
  }
  int RootEntry(fuse_entry_out* out) const override { return -ENOSYS; }
  void SetCompletion(CompleteFn fn) override { complete = std::move(fn); }

  std::atomic<int> handled{0}, resets{0}, syncs{0}, inits{0};
  std::atomic<uint32_t> last_opcode{0};
  std::atomic<uint64_t> interrupted{0}, kernel{0}, granted{0};
  std::vector<std::pair<uint64_t, uint64_t>> forgets;  // guarded by mu
  bool hold = false;
  std::mutex mu;
  std::condition_variable cv;
  bool inside = false, released = false;  // guarded by mu
  std::shared_ptr<std::atomic<bool>> destroyed = std::make_shared<std::atomic<bool>>(false);
  CompleteFn complete;
};

fuse::NativeMounts::Mount MountOf(std::shared_ptr<fuse::NativeFs> fs, bool whole = false) {
  fuse::NativeMounts::Mount m;
  m.lo = kLo;
  m.hi = kHi;
  m.fs = std::move(fs);
  m.count_node = kRange + 2;
  m.whole_connection = whole;
  return m;
}

fuse_getattr_in NoFh() { return fuse_getattr_in{}; }

NTEST(NativeRoute, OwnedNodesAreServedInlineOthersGoToTheHandler) {
  Harness h(AllOps());
  auto fake = std::make_shared<FakeFs>();
  NASSERT_TRUE(h.s->AttachNative(MountOf(fake)));
  // Overlapping ranges are refused.
  NEXPECT_FALSE(h.s->AttachNative(MountOf(std::make_shared<FakeFs>())));
  InitSession(*h.s);
  auto& a = h.Req(ReqBuilder(FUSE_GETATTR, 10, kLo + 5).Arg(NoFh()).Bytes(), 256);
  h.s->OnRequest(&a);
  NEXPECT_EQ(a.completions(), 1);
  NEXPECT_EQ(a.header().error, 0);
  NEXPECT_EQ(fake->handled.load(), 1);
  // Write ops the read-only table answers EROFS reach the owner.
  auto& w =
      h.Req(ReqBuilder(FUSE_MKDIR, 11, kLo).Arg(fuse_mkdir_in{0755, 0}).Name("d").Bytes(), 256);
  h.s->OnRequest(&w);
  NEXPECT_EQ(w.header().error, 0);
  NEXPECT_EQ(fake->last_opcode.load(), static_cast<uint32_t>(FUSE_MKDIR));
  // A node of another range (the pseudo root) goes to the handler as before.
  auto& p = h.Req(ReqBuilder(FUSE_GETATTR, 12, 1).Arg(NoFh()).Bytes(), 256);
  h.s->OnRequest(&p);
  NEXPECT_EQ(p.completions(), 0);
  auto ups = DrainAll(*h.s);
  NASSERT_EQ(ups.size(), 2u);  // the INIT notice and the GETATTR
  NEXPECT_EQ(ups[1].opcode(), static_cast<uint32_t>(FUSE_GETATTR));
  NEXPECT_EQ(h.s->ReplyError(ups[1].token(), ENOENT), 0);
  // Before INIT the session answers EIO itself: checked by a fresh session.
  Harness h2(AllOps());
  auto f2 = std::make_shared<FakeFs>();
  NASSERT_TRUE(h2.s->AttachNative(MountOf(f2)));
  auto& b = h2.Req(ReqBuilder(FUSE_GETATTR, 13, kLo).Arg(NoFh()).Bytes(), 256);
  h2.s->OnRequest(&b);
  NEXPECT_EQ(b.header().error, -EIO);
  NEXPECT_EQ(f2->handled.load(), 0);
}

NTEST(NativeRoute, ForgetsAreSplitByOwner) {
  Harness h(AllOps());
  auto fake = std::make_shared<FakeFs>();
  NASSERT_TRUE(h.s->AttachNative(MountOf(fake)));
  InitSession(*h.s);
  DrainAll(*h.s);
  auto& f = h.Req(ReqBuilder(FUSE_FORGET, 20, kLo + 3).Arg(fuse_forget_in{4}).Bytes(), 64);
  h.s->OnRequest(&f);
  fuse_batch_forget_in bf{3, 0};
  fuse_forget_one one[3] = {{kLo + 7, 2}, {5, 1}, {kLo + 9, 1}};
  ReqBuilder rb(FUSE_BATCH_FORGET, 21, 0);
  rb.Arg(bf);
  for (const auto& o : one) rb.Arg(o);
  auto& b = h.Req(rb.Bytes(), 64);
  h.s->OnRequest(&b);
  {
    std::lock_guard lock(fake->mu);
    NASSERT_EQ(fake->forgets.size(), 3u);
    NEXPECT_EQ(fake->forgets[0].first, kLo + 3);
    NEXPECT_EQ(fake->forgets[0].second, 4u);
    NEXPECT_EQ(fake->forgets[1].first, kLo + 7);
    NEXPECT_EQ(fake->forgets[2].first, kLo + 9);
  }
  // Only node 5 (not owned) reaches the handler.
  auto ups = DrainAll(*h.s);
  size_t forwarded = 0;
  for (const auto& u : ups) {
    if (u.opcode() == fuse::kUpcallForget) forwarded += static_cast<size_t>(u.rec[UpcallSlot::kA0]);
  }
  NEXPECT_EQ(forwarded, 1u);
}

NTEST(NativeRoute, InitMergesFlagsAndPassesThemOn) {
  for (bool whole : {false, true}) {
    Harness h(AllOps());
    auto fake = std::make_shared<FakeFs>();
    NASSERT_TRUE(h.s->AttachNative(MountOf(fake, whole)));
    auto reply = InitSession(*h.s);
    fuse_init_out out{};
    std::memcpy(&out, reply.data() + sizeof(fuse_out_header), sizeof(out));
    NEXPECT_TRUE((out.flags & FUSE_WRITEBACK_CACHE) != 0);
    NEXPECT_EQ(fake->inits.load(), 1);
    NEXPECT_TRUE((fake->granted.load() & FUSE_WRITEBACK_CACHE) != 0);
    NEXPECT_EQ((fake->kernel.load() & FUSE_NO_OPEN_SUPPORT) != 0, whole);
    // Attached after INIT: told at once, with the same flags.
    auto late = std::make_shared<FakeFs>();
    auto m = MountOf(late);
    m.lo = 2 * kRange + 1;
    m.hi = 3 * kRange;
    NASSERT_TRUE(h.s->AttachNative(m));
    NEXPECT_EQ(late->inits.load(), 1);
    NEXPECT_TRUE((late->granted.load() & FUSE_WRITEBACK_CACHE) != 0);
  }
  // Without a native filesystem the session does not ask for the writeback cache.
  Harness h(AllOps());
  auto reply = InitSession(*h.s);
  fuse_init_out out{};
  std::memcpy(&out, reply.data() + sizeof(fuse_out_header), sizeof(out));
  NEXPECT_TRUE((out.flags & FUSE_WRITEBACK_CACHE) == 0);
}

NTEST(NativeRoute, InterruptSyncfsAndResetReachNativeFilesystems) {
  Harness h(AllOps());
  // No native filesystem: SYNCFS of the root is ENOSYS (the kernel stops sending it).
  InitSession(*h.s);
  auto& s0 = h.Req(ReqBuilder(FUSE_SYNCFS, 29, 1).Arg(fuse_syncfs_in{}).Bytes(), 64);
  h.s->OnRequest(&s0);
  NEXPECT_EQ(s0.header().error, -ENOSYS);
  auto fake = std::make_shared<FakeFs>();
  NASSERT_TRUE(h.s->AttachNative(MountOf(fake)));
  auto& s1 = h.Req(ReqBuilder(FUSE_SYNCFS, 30, 1).Arg(fuse_syncfs_in{}).Bytes(), 64);
  h.s->OnRequest(&s1);
  NEXPECT_EQ(s1.header().error, 0);
  NEXPECT_EQ(fake->syncs.load(), 1);
  auto& i = h.Req(ReqBuilder(FUSE_INTERRUPT, 31, 0).Arg(fuse_interrupt_in{77}).Bytes(), 64);
  h.s->OnRequest(&i);
  NEXPECT_EQ(i.written(), 0u);
  NEXPECT_EQ(fake->interrupted.load(), 77u);
  auto& d = h.Req(ReqBuilder(FUSE_DESTROY, 32, 0).Bytes(), 64);
  h.s->OnRequest(&d);
  NEXPECT_EQ(fake->resets.load(), 1);
}

NTEST(NativeRoute, DetachLetsTheRequestInsideFinishThenFrees) {
  Harness h(AllOps());
  auto fake = std::make_shared<FakeFs>();
  fake->hold = true;
  auto destroyed = fake->destroyed;
  FakeFs* raw = fake.get();
  NASSERT_TRUE(h.s->AttachNative(MountOf(std::move(fake))));
  InitSession(*h.s);
  DrainAll(*h.s);
  auto& a = h.Req(ReqBuilder(FUSE_GETATTR, 40, kLo).Arg(NoFh()).Bytes(), 256);
  std::thread t([&] { h.s->OnRequest(&a); });
  {
    std::unique_lock lock(raw->mu);
    raw->cv.wait(lock, [raw] { return raw->inside; });
  }
  NEXPECT_TRUE(h.s->DetachNative(kLo) != nullptr);  // the returned reference drops here
  NEXPECT_FALSE(destroyed->load());                 // the request inside still holds it
  // A new request on its nodes goes to the handler now.
  auto& b = h.Req(ReqBuilder(FUSE_GETATTR, 41, kLo).Arg(NoFh()).Bytes(), 256);
  h.s->OnRequest(&b);
  auto ups = DrainAll(*h.s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(h.s->ReplyError(ups[0].token(), ENOENT), 0);
  NEXPECT_EQ(b.header().error, -ENOENT);
  {
    std::lock_guard lock(raw->mu);
    raw->released = true;
    raw->cv.notify_all();
  }
  t.join();
  NEXPECT_EQ(a.completions(), 1);
  NEXPECT_EQ(a.header().error, 0);
  NEXPECT_TRUE(destroyed->load());
  NEXPECT_TRUE(h.s->DetachNative(kLo) == nullptr);
}

NTEST(NativeRoute, MountPointEntryIsNotCached) {
  fuse::SessionOptions o = AllOps();
  o.handler_ops.reset(FUSE_FORGET);
  o.immutable = true;
  Harness h(o);
  auto fake = std::make_shared<FakeFs>();
  NASSERT_TRUE(h.s->AttachNative(MountOf(fake)));
  InitSession(*h.s);
  DrainAll(*h.s);
  auto rec = EntryRecord(static_cast<double>(kLo), S_IFDIR | 0755, 4096);
  for (uint64_t u : {50, 51}) {
    auto& l = h.Req(ReqBuilder(FUSE_LOOKUP, u, 1).Name("containers").Bytes(), 256);
    h.s->OnRequest(&l);
    auto ups = DrainAll(*h.s);
    NASSERT_EQ(ups.size(), 1u);  // asked again: the first answer was not cached
    NEXPECT_EQ(h.s->ReplyEntry(ups[0].token(), rec.data()), 0);
    NEXPECT_EQ(l.completions(), 1);
  }
  // An ordinary entry still is.
  auto rec2 = EntryRecord(9, S_IFDIR | 0755, 4096);
  auto& l1 = h.Req(ReqBuilder(FUSE_LOOKUP, 52, 1).Name("rafs").Bytes(), 256);
  h.s->OnRequest(&l1);
  auto ups = DrainAll(*h.s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(h.s->ReplyEntry(ups[0].token(), rec2.data()), 0);
  auto& l2 = h.Req(ReqBuilder(FUSE_LOOKUP, 53, 1).Name("rafs").Bytes(), 256);
  h.s->OnRequest(&l2);
  NEXPECT_EQ(l2.completions(), 1);
  NEXPECT_TRUE(DrainAll(*h.s).empty());
}

NTEST(NativeRoute, PassthroughBehindTheSessionWritesTheHostTree) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0777);  // the requests come from uid 1000 (ReqBuilder)
  passthrough::PassthroughOptions po = passthrough::KataSharedDirOptions();
  po.node_base = kLo;
  po.node_span = kHi - kLo;
  int err = 0;
  auto pt = passthrough::PassthroughFs::Open(dir.path(), po, &err);
  NASSERT_TRUE(pt != nullptr);
  Harness h(AllOps());
  NASSERT_TRUE(h.s->AttachNative(MountOf(passthrough::AsNativeFs(std::move(pt)))));
  InitSession(*h.s);
  DrainAll(*h.s);
  auto& c = h.Req(ReqBuilder(FUSE_CREATE, 60, kLo)
                      .Arg(fuse_create_in{O_WRONLY | O_CREAT, 0640, 0, 0})
                      .Name("hello")
                      .Bytes(),
                  1024);
  h.s->OnRequest(&c);
  NASSERT_EQ(c.header().error, 0);
  fuse_entry_out e{};
  fuse_open_out oo{};
  auto rep = c.reply();
  std::memcpy(&e, rep.data() + sizeof(fuse_out_header), sizeof(e));
  std::memcpy(&oo, rep.data() + sizeof(fuse_out_header) + sizeof(e), sizeof(oo));
  NEXPECT_TRUE(e.nodeid > kLo && e.nodeid < kHi);
  fuse_write_in wi{};
  wi.fh = oo.fh;
  wi.size = 5;
  auto& w = h.Req(ReqBuilder(FUSE_WRITE, 61, e.nodeid).Arg(wi).Raw("world").Bytes(), 256);
  h.s->OnRequest(&w);
  NEXPECT_EQ(w.header().error, 0);
  auto& r = h.Req(
      ReqBuilder(FUSE_RELEASE, 62, e.nodeid).Arg(fuse_release_in{oo.fh, 0, 0, 0}).Bytes(), 64);
  h.s->OnRequest(&r);
  NEXPECT_EQ(r.header().error, 0);
  NEXPECT_EQ(ReadFileAt(dir.File("hello")), std::string("world"));
  struct stat st;
  NASSERT_EQ(::stat(dir.File("hello").c_str(), &st), 0);
  NEXPECT_EQ(st.st_mode & 07777, 0640u);
  NEXPECT_TRUE(DrainAll(*h.s).empty());  // nothing crossed to the handler
}

}  // namespace
}  // namespace nydus::testing
