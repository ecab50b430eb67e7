// The backend driven through the exact message sequences of QEMU 7.2 and cloud-hypervisor
// (reference §1.5): realize, start, requests, stop, reboot without memory resend, the
// SET_MEM_TABLE-only variant, call-fd swaps while busy, GET_VRING_BASE draining, pool mode.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>

#include "vhost_harness.h"

using namespace nydus::vhost;
using nydus::UniqueFd;
using namespace nydus::vhost::testing;
using frontend::Flavor;
using frontend::FsFrontendSession;

namespace {

std::vector<std::string> Without(const std::vector<std::string>& trace, size_t from) {
  return std::vector<std::string>(trace.begin() + static_cast<ptrdiff_t>(from), trace.end());
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "; ";
  return out;
}

// Sends `n` echo requests on queue 1 one after another and checks every reply.
bool EchoRoundTrips(FsFrontendSession& s, int n, uint64_t first_unique) {
  for (int i = 0; i < n; ++i) {
    uint64_t unique = first_unique + static_cast<uint64_t>(i);
    std::string payload = "payload-" + std::to_string(unique);
    Submitted sub = SubmitEcho(s, 1, unique, payload, 64);
    if (sub.head < 0) return false;
    auto used = WaitUsed(s, 1, 1);
    if (used.size() != 1 || used[0].id != static_cast<uint32_t>(sub.head)) return false;
    TestOutHeader oh = ReadOut(s, sub.out_gpa);
    if (oh.unique != unique || oh.error != 0 || oh.len != 16 + payload.size()) return false;
    if (used[0].len != oh.len) return false;
    if (memcmp(s.ram().Host(sub.out_gpa + 16, payload.size()), payload.data(), payload.size()) !=
        0) {
      return false;
    }
  }
  return true;
}

bool Forget(FsFrontendSession& s) {
  uint64_t in = s.ram().Alloc(48, 8);
  TestInHeader ih{48, 2, 0, 5, 0, 0, 0, 0, 0};
  memcpy(s.ram().Host(in, 40), &ih, 40);
  frontend::DriverQueue::Buffer b{in, 48, false};
  int head = s.queue(0).Add(&b, 1, true);
  s.Kick(0);
  auto used = WaitUsed(s, 0, 1);
  return used.size() == 1 && used[0].id == static_cast<uint32_t>(head) && used[0].len == 0;
}

}  // namespace

NTEST(VhostBackend, Qemu72RealizeStartStopReboot) {
  EchoSink sink;
  Harness h(&sink);
  NASSERT_TRUE(h.started);
  auto s = h.Connect(SmallSession(), false);
  NASSERT_TRUE(s != nullptr);
  const std::vector<std::string> realize = {
      "GET_FEATURES",     "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES 0x8009",
      "GET_QUEUE_NUM",    "GET_MAX_MEM_SLOTS",     "SET_OWNER",
      "GET_FEATURES",     "SET_VRING_CALL 0",      "SET_VRING_ERR 0",
      "SET_VRING_CALL 1", "SET_VRING_ERR 1"};
  NEXPECT_EQ(Join(s->client().trace()), Join(realize));
  NEXPECT_EQ(s->backend_features(), kBackendFeatures);
  NEXPECT_EQ(s->backend_features(), 0x170000000ull);
  NEXPECT_EQ(s->queue_num(), 2u);
  NEXPECT_EQ(s->max_mem_slots(), 32u);
  std::string err;
  size_t mark = s->client().trace().size();
  NASSERT_EQ(s->Start(&err), 0);
  const std::vector<std::string> start = {"SET_VRING_CALL 0",
                                          "SET_VRING_CALL 1",
                                          "SET_FEATURES 0x170000000",
                                          "ADD_MEM_REG gpa=0x0 size=0xa0000",
                                          "ADD_MEM_REG gpa=0xc0000 size=0x1f40000",
                                          "SET_VRING_NUM 0 64",
                                          "SET_VRING_BASE 0 0",
                                          "SET_VRING_ADDR 0",
                                          "SET_VRING_KICK 0",
                                          "SET_VRING_NUM 1 64",
                                          "SET_VRING_BASE 1 0",
                                          "SET_VRING_ADDR 1",
                                          "SET_VRING_KICK 1",
                                          "SET_VRING_ENABLE 0 1",
                                          "SET_VRING_ENABLE 1 1",
                                          "SET_VRING_CALL 0",
                                          "SET_VRING_CALL 1"};
  NEXPECT_EQ(Join(Without(s->client().trace(), mark)), Join(start));

  NEXPECT_TRUE(Forget(*s));
  NEXPECT_TRUE(EchoRoundTrips(*s, 5, 100));
  std::vector<uint32_t> bases;
  NASSERT_EQ(s->Stop(&bases, &err), 0);
  NASSERT_EQ(bases.size(), size_t{2});
  NEXPECT_EQ(bases[0], 1u);  // one FORGET consumed on hiprio
  NEXPECT_EQ(bases[1], 5u);

  // Guest reboot: same connection, fresh rings at new addresses, no memory resent.
  mark = s->client().trace().size();
  NASSERT_EQ(s->Start(&err), 0);
  auto again = Without(s->client().trace(), mark);
  NEXPECT_TRUE(std::none_of(again.begin(), again.end(), [](const std::string& m) {
    return m.find("MEM") != std::string::npos;
  }));
  NEXPECT_TRUE(EchoRoundTrips(*s, 3, 200));
  bases.clear();
  NASSERT_EQ(s->Stop(&bases, &err), 0);
  NEXPECT_EQ(bases[1], 3u);
  BackendStats st = h.backend->GetStats();
  NEXPECT_EQ(st.requests, 9u);
  NEXPECT_EQ(st.connections, 1u);
  NEXPECT_EQ(st.bad_chains, 0u);
  NEXPECT_EQ(st.protocol_errors, 0u);
}

NTEST(VhostBackend, SetMemTableOnlyFrontend) {
  EchoSink sink;
  Harness h(&sink);
  auto so = SmallSession();
  so.mem_slots = false;
  auto s = h.Connect(so);
  NASSERT_TRUE(s != nullptr);
  NEXPECT_EQ(s->acked_protocol_features(), 0x0009ull);
  bool table_sent = false;
  for (const auto& m : s->client().trace()) {
    if (m == "SET_MEM_TABLE 2 regions") table_sent = true;
    NEXPECT_TRUE(m.find("ADD_MEM_REG") == std::string::npos);
  }
  NEXPECT_TRUE(table_sent);
  NEXPECT_TRUE(EchoRoundTrips(*s, 3, 1));
  std::string err;
  NASSERT_EQ(s->Stop(nullptr, &err), 0);
  NASSERT_EQ(s->Start(&err), 0);  // the table is sent again at every start
  NEXPECT_TRUE(EchoRoundTrips(*s, 3, 10));
}

NTEST(VhostBackend, CloudHypervisorSequenceAndReset) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect(SmallSession(Flavor::kCloudHypervisor));
  NASSERT_TRUE(s != nullptr);
  const auto& t = s->client().trace();
  NASSERT_GE(t.size(), size_t{6});
  NEXPECT_EQ(t[0], std::string("SET_OWNER"));
  NEXPECT_EQ(t[1], std::string("GET_FEATURES"));
  NEXPECT_EQ(s->acked_protocol_features(), 0x8009ull);  // MQ|REPLY_ACK|CONFIGURE_MEM_SLOTS
  NEXPECT_TRUE(Forget(*s));
  NEXPECT_TRUE(EchoRoundTrips(*s, 4, 1));
  // Device reset: ENABLE 0 only, then the rings are reconfigured while "running".
  std::string err;
  NASSERT_EQ(s->Stop(nullptr, &err), 0);
  NASSERT_EQ(s->Start(&err), 0);
  NEXPECT_TRUE(EchoRoundTrips(*s, 4, 50));
  NEXPECT_EQ(h.backend->GetStats().requests, 9u);
}

NTEST(VhostBackend, GetVringBaseWaitsForInFlightRequests) {
  AsyncSink sink(false);
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  SubmitEcho(*s, 1, 1, "a", 16);
  SubmitEcho(*s, 1, 2, "b", 16);
  NASSERT_TRUE(WaitFor([&] { return sink.parked() == 2; }));
  std::thread releaser([&] {
    ::usleep(100 * 1000);
    sink.ReleaseAll();
  });
  std::vector<uint32_t> bases;
  std::string err;
  NASSERT_EQ(s->Stop(&bases, &err), 0);
  releaser.join();
  NEXPECT_EQ(bases[1], 2u);
  // Both replies were published before GET_VRING_BASE answered.
  std::vector<VirtqUsedElem> used;
  s->queue(1).Collect(&used);
  NEXPECT_EQ(used.size(), size_t{2});
  NEXPECT_EQ(h.backend->GetStats().stale_completions, 0u);
}

NTEST(VhostBackend, CallFdSwapsWhileBusy) {
  AsyncSink sink(true);  // completions come from another thread: immediate publication
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  constexpr int kTotal = 1500;
  std::atomic<bool> done{false};
  std::atomic<int> completed{0};
  std::atomic<bool> bad{false};
  std::thread io([&] {
    // The guest side: keep 8 requests in flight, busy-poll the used ring (the call fd is being
    // swapped under our feet, so it is not waited on).
    int submitted = 0;
    std::vector<VirtqUsedElem> used;
    int64_t end = NowMs() + 20000;
    while (completed.load() < kTotal && NowMs() < end) {
      while (submitted < kTotal && s->queue(1).in_flight() < 8) {
        if (SubmitEcho(*s, 1, static_cast<uint64_t>(submitted) + 1, "x", 8).head < 0) {
          bad.store(true);
        }
        ++submitted;
      }
      used.clear();
      s->queue(1).Collect(&used);
      completed.fetch_add(static_cast<int>(used.size()));
      if (used.empty()) ::usleep(50);
    }
    done.store(true);
  });
  UniqueFd a = MakeEventFd();
  UniqueFd b = MakeEventFd();
  int swaps = 0;
  while (!done.load()) {
    NASSERT_EQ(s->client().SetVringFd(VHOST_USER_SET_VRING_CALL, 1, (swaps % 2 == 0 ? a : b).get()),
               0);
    ++swaps;
    ::usleep(200);
  }
  io.join();
  NEXPECT_FALSE(bad.load());
  NEXPECT_EQ(completed.load(), kTotal);
  NEXPECT_GT(swaps, 10);
}

// Holds its 9th request until the guest side has seen used entries: that can only happen if
// the queue published the chains it finished before this one (max_chains_per_round), not once
// at the end of the whole drain.
class GateSink : public nydus::transport::FuseRequestSink {
 public:
  void OnRequest(nydus::transport::FuseRequest* r) override {
    if (count.fetch_add(1) == 8) {
      std::unique_lock<std::mutex> l(mu);
      released = cv.wait_for(l, std::chrono::seconds(3), [this] { return gate_open; });
    }
    r->Complete(EchoReply(r));
  }
  void OnSessionReset() override {}
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu);
      gate_open = true;
    }
    cv.notify_all();
  }
  std::atomic<int> count{0};
  std::mutex mu;
  std::condition_variable cv;
  bool gate_open = false;  // guarded by mu
  bool released = false;   // guarded by mu
};

NTEST(VhostBackend, InlineCompletionsArePublishedEveryFewChains) {
  GateSink sink;
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  for (int i = 0; i < 16; ++i) SubmitEcho(*s, 1, 100 + i, "", 8, false);
  s->Kick(1);
  std::vector<VirtqUsedElem> used;
  NEXPECT_TRUE(WaitFor(
      [&] {
        s->queue(1).Collect(&used);
        return used.size() >= 4;
      },
      2000));
  sink.Open();
  auto rest = WaitUsed(*s, 1, 16 - used.size());
  NEXPECT_EQ(used.size() + rest.size(), size_t{16});
  std::lock_guard<std::mutex> l(sink.mu);
  NEXPECT_TRUE(sink.released);
}

NTEST(VhostBackend, PollModeWithoutKickFd) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  // Replace queue 1's kick fd with NOFD: the backend restarts the ring and polls it.
  NASSERT_EQ(s->client().SetVringFd(VHOST_USER_SET_VRING_KICK, 1, -1), 0);
  NASSERT_EQ(s->client().SetVringState(VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
  Submitted sub = SubmitEcho(*s, 1, 77, "poll", 16, false);
  s->queue(1).Publish();  // no kick
  auto used = WaitUsed(*s, 1, 1);
  NASSERT_EQ(used.size(), size_t{1});
  NEXPECT_EQ(ReadOut(*s, sub.out_gpa).unique, 77u);
}

NTEST(VhostBackend, ManyRequestQueues) {
  EchoSink sink;
  BackendOptions o;
  o.num_request_queues = 3;
  Harness h(&sink, o);
  auto so = SmallSession();
  so.num_request_queues = 3;
  auto s = h.Connect(so);
  NASSERT_TRUE(s != nullptr);
  NEXPECT_EQ(s->queue_num(), 4u);
  for (uint32_t q = 1; q <= 3; ++q) {
    Submitted sub = SubmitEcho(*s, q, 10 + q, "q", 16);
    auto used = WaitUsed(*s, q, 1);
    NEXPECT_EQ(used.size(), size_t{1});
    NEXPECT_EQ(ReadOut(*s, sub.out_gpa).unique, 10u + q);
  }
}

NTEST(VhostBackend, MemoryUpdatesWhileBusy) {
  AsyncSink sink(true);
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  std::atomic<bool> done{false};
  std::atomic<int> completed{0};
  std::thread io([&] {
    int submitted = 0;
    std::vector<VirtqUsedElem> used;
    int64_t end = NowMs() + 20000;
    while (completed.load() < 800 && NowMs() < end) {
      while (submitted < 800 && s->queue(1).in_flight() < 4) {
        SubmitEcho(*s, 1, static_cast<uint64_t>(++submitted), "m", 8);
      }
      used.clear();
      s->queue(1).Collect(&used);
      completed.fetch_add(static_cast<int>(used.size()));
      if (used.empty()) ::usleep(50);
    }
    done.store(true);
  });
  // Hotplug-style updates of an unrelated region while requests flow (RCU snapshots).
  UniqueFd extra = MakeMemfd(1 << 20);
  VhostUserMemoryRegion r{uint64_t{1} << 32, 1 << 20, 0x7e0000000000, 0};
  int updates = 0;
  while (!done.load()) {
    NASSERT_EQ(s->client().AddMemReg(r, extra.get()), 0);
    NASSERT_EQ(s->client().RemMemReg(r), 0);
    ++updates;
  }
  io.join();
  NEXPECT_EQ(completed.load(), 800);
  NEXPECT_GT(updates, 0);
}

NTEST(VhostBackend, ResetOwnerStopsRingsAndKeepsTheConnection) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  NEXPECT_TRUE(EchoRoundTrips(*s, 2, 1));
  NASSERT_EQ(s->client().Simple(VHOST_USER_RESET_OWNER), 0);
  uint64_t features = 0;
  NASSERT_EQ(s->client().GetU64(VHOST_USER_GET_FEATURES, &features), 0);
  std::string err;
  NASSERT_EQ(s->Start(&err), 0);
  NEXPECT_TRUE(EchoRoundTrips(*s, 2, 10));
}

NTEST(VhostBackend, CompletionsAfterTheBackendIsGoneAreDropped) {
  AsyncSink sink(false);
  {
    Harness h(&sink);
    auto s = h.Connect();
    NASSERT_TRUE(s != nullptr);
    for (int i = 0; i < 4; ++i) SubmitEcho(*s, 1, i + 1, "late", 16);
    NASSERT_TRUE(WaitFor([&] { return sink.parked() == 4; }));
    h.backend->Stop();
    h.backend.reset();  // device, rings and memory table are gone on the backend side
  }
  // The requests still reference their ring and mapping: completing them is a safe no-op.
  sink.ReleaseAll();
  NEXPECT_EQ(sink.requests.load(), 4);
}

NTEST(VhostBackend, InheritedListeningFd) {
  nydus::testing::TempDir dir;
  std::string path = dir.File("inherited.sock");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  NASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  NASSERT_EQ(::listen(fd.get(), 1), 0);
  EchoSink sink;
  BackendOptions o;
  o.listen_fd = fd.get();
  VhostUserFsBackend backend(o, &sink);
  std::string err;
  NASSERT_EQ(backend.Start(&err), 0);
  for (int round = 0; round < 2; ++round) {  // and again after a disconnect
    frontend::FsFrontendSession s(SmallSession());
    NASSERT_EQ(s.Connect(path, &err), 0);
    NASSERT_EQ(s.Realize(&err), 0);
    NASSERT_EQ(s.Start(&err), 0);
    NEXPECT_TRUE(EchoRoundTrips(s, 2, 1));
  }
  backend.Stop();
  // The caller still owns its descriptor.
  NEXPECT_EQ(::fcntl(fd.get(), F_GETFD) >= 0, true);
}
