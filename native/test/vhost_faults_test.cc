// Bad input from the frontend and the guest: refused and malformed messages, missing shared
// memory, malformed chains (EIO or len 0), broken rings, disconnects with requests in flight.
// After each, the backend must still serve (the same or a new connection).
#include <errno.h>
#include <sys/socket.h>

#include "vhost_harness.h"

using namespace nydus::vhost;
using nydus::UniqueFd;
using namespace nydus::vhost::testing;
using frontend::FsFrontendSession;

namespace {

bool Alive(Harness& h) {
  auto s = h.Connect();
  if (s == nullptr) return false;
  Submitted sub = SubmitEcho(*s, 1, 4242, "alive", 16);
  auto used = WaitUsed(*s, 1, 1);
  return used.size() == 1 && ReadOut(*s, sub.out_gpa).unique == 4242;
}

// Sends raw bytes (+fds) and reports whether the backend then closed the connection.
bool ClosedAfter(FsFrontendSession& s, const void* bytes, size_t len, const int* fds, size_t nfds) {
  struct iovec iov = {const_cast<void*>(bytes), len};
  alignas(struct cmsghdr) char control[CMSG_SPACE(32 * sizeof(int))];
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  if (::sendmsg(s.client().fd(), &mh, MSG_NOSIGNAL) < 0) return true;
  struct pollfd p = {s.client().fd(), POLLIN, 0};
  if (::poll(&p, 1, 5000) <= 0) return false;
  char c;
  // EOF, or ECONNRESET when the backend closed with our bytes unread.
  return ::recv(s.client().fd(), &c, 1, 0) <= 0;
}

}  // namespace

NTEST(VhostFaults, UnsupportedMessagesAreRefusedNotFatal) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect(SmallSession(), false);
  NASSERT_TRUE(s != nullptr);
  auto& c = s->client();
  // With REPLY_ACK negotiated, NEED_REPLY gets an ack; a refusal is a non-zero ack.
  uint64_t ack = 0;
  NASSERT_EQ(c.Send(99, nullptr, 0, nullptr, 0, true), 0);
  NASSERT_EQ(c.Recv(99, &ack, 8), 0);
  NEXPECT_NE(ack, 0u);
  NASSERT_EQ(c.Send(VHOST_USER_SET_VRING_ENDIAN, "\0\0\0\0\0\0\0\0", 8, nullptr, 0, true), 0);
  NASSERT_EQ(c.Recv(VHOST_USER_SET_VRING_ENDIAN, &ack, 8), 0);
  NEXPECT_NE(ack, 0u);
  c.set_ack_policy(frontend::AckPolicy::kEveryMessage);
  NEXPECT_EQ(c.SetVringState(VHOST_USER_SET_VRING_NUM, 1, 3), -EIO);     // not a power of 2
  NEXPECT_EQ(c.SetVringState(VHOST_USER_SET_VRING_NUM, 1, 2048), -EIO);  // over the maximum
  NEXPECT_EQ(c.SetVringState(VHOST_USER_SET_VRING_NUM, 7, 64), -EIO);    // no such queue
  NEXPECT_EQ(c.SetVringState(VHOST_USER_SET_VRING_ENABLE, 0, 2), -EIO);
  NEXPECT_EQ(c.SetVringState(VHOST_USER_SET_VRING_BASE, 0, 70000), -EIO);
  NEXPECT_EQ(c.SetU64(VHOST_USER_SET_FEATURES, 1ull << 40), -EIO);              // never offered
  NEXPECT_EQ(c.SetSlaveReqFd(), -EIO);                                          // not offered
  NEXPECT_EQ(c.SetVringFd(VHOST_USER_SET_VRING_CALL, 0, s->ram().fd()), -EIO);  // no eventfd
  NEXPECT_EQ(c.RemMemReg({0x1234000, 0x1000, 0, 0}), -EIO);
  UniqueFd small = MakeMemfd(0x1000);
  NEXPECT_EQ(c.AddMemReg({0x40000000, 0x100000, 0x1000, 0}, small.get()), -EIO);  // past EOF
  c.set_ack_policy(frontend::AckPolicy::kMemoryUpdates);
  std::string err;
  NASSERT_EQ(s->Start(&err), 0);  // still a working device
  Submitted sub = SubmitEcho(*s, 1, 5, "ok", 16);
  NEXPECT_EQ(WaitUsed(*s, 1, 1).size(), size_t{1});
  NEXPECT_EQ(ReadOut(*s, sub.out_gpa).unique, 5u);
  NEXPECT_GE(h.backend->GetStats().refused_messages, 10u);
  NEXPECT_EQ(h.backend->GetStats().protocol_errors, 0u);
}

NTEST(VhostFaults, MalformedMessagesCloseTheConnectionOnly) {
  EchoSink sink;
  Harness h(&sink);
  UniqueFd efd = MakeEventFd();
  int fds[12];
  for (int& f : fds) f = efd.get();
  struct Case {
    VhostUserHeader hdr;
    size_t nfds;
  };
  const Case cases[] = {
      {{VHOST_USER_SET_FEATURES, 1, 0x10000}, 0},  // oversize
      {{VHOST_USER_SET_VRING_NUM, 1, 4}, 0},       // wrong size
      {{VHOST_USER_GET_FEATURES, 1, 0}, 1},        // fd on a message that takes none
      {{VHOST_USER_SET_MEM_TABLE, 1, 8}, 12},      // too many fds
      {{VHOST_USER_GET_FEATURES, 0x7, 0}, 0},      // reply flag on a request
      {{VHOST_USER_GET_CONFIG, 1, 12}, 0},         // needs a reply body we cannot give
  };
  uint64_t closed = 0;
  for (const Case& k : cases) {
    auto s = h.Connect(SmallSession(), false);
    NASSERT_TRUE(s != nullptr);
    uint8_t buf[12 + 16] = {};
    memcpy(buf, &k.hdr, 12);
    size_t len = 12 + std::min<size_t>(k.hdr.size, 16);
    if (ClosedAfter(*s, buf, len, fds, k.nfds)) ++closed;
    NASSERT_TRUE(WaitFor([&] { return !h.backend->connected(); }));
  }
  NEXPECT_EQ(closed, uint64_t{6});
  NEXPECT_EQ(h.backend->GetStats().protocol_errors, 5u);
  NEXPECT_TRUE(Alive(h));
}

NTEST(VhostFaults, AbruptDisconnectWithRequestsInFlight) {
  AsyncSink sink(false);
  Harness h(&sink);
  {
    auto s = h.Connect();
    NASSERT_TRUE(s != nullptr);
    for (int i = 0; i < 3; ++i) SubmitEcho(*s, 1, i + 1, "parked", 16);
    NASSERT_TRUE(WaitFor([&] { return sink.parked() == 3; }));
  }  // the frontend process "dies": socket closed, memory unmapped on its side
  NASSERT_TRUE(WaitFor([&] { return sink.resets.load() == 1 && !h.backend->connected(); }));
  sink.ReleaseAll();  // late completions: written into still-mapped memory, then dropped
  NEXPECT_EQ(h.backend->GetStats().stale_completions, 3u);
  // Half a message, then gone.
  {
    auto s = h.Connect(SmallSession(), false);
    NASSERT_TRUE(s != nullptr);
    uint8_t half[6] = {2, 0, 0, 0, 1, 0};
    (void)!::write(s->client().fd(), half, sizeof(half));
  }
  NASSERT_TRUE(WaitFor([&] { return sink.resets.load() == 2; }));
  sink.ReleaseAll();
  EchoSink echo;
  Harness fresh(&echo);
  NEXPECT_TRUE(Alive(fresh));
}

NTEST(VhostFaults, GuestRamNotSharedIsExplained) {
  LogCapture logs;
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect(SmallSession(), false);
  NASSERT_TRUE(s != nullptr);
  auto& c = s->client();
  // What QEMU does with anonymous guest RAM: no memory regions at all, then the rings.
  NASSERT_EQ(c.SetU64(VHOST_USER_SET_FEATURES, 0x170000000ull), 0);
  NASSERT_EQ(c.SetVringState(VHOST_USER_SET_VRING_NUM, 1, 64), 0);
  NASSERT_EQ(c.SetVringState(VHOST_USER_SET_VRING_BASE, 1, 0), 0);
  NASSERT_EQ(c.SetVringAddr(1, 0x7f0000000000, 0x7f0000004840, 0x7f0000004000, 0x4840), 0);
  UniqueFd kick = MakeEventFd();
  NASSERT_EQ(c.SetVringFd(VHOST_USER_SET_VRING_KICK, 1, kick.get()), 0);
  uint64_t features = 0;
  NEXPECT_EQ(c.GetU64(VHOST_USER_GET_FEATURES, &features), 0);  // still answering
  NEXPECT_TRUE(logs.Contains("memory-backend-memfd"));
  NEXPECT_TRUE(logs.Contains("share=on"));
  NEXPECT_TRUE(logs.Contains("-numa"));
}

NTEST(VhostFaults, MalformedChainsGetEioOrEmptyCompletion) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  auto& ram = s->ram();
  uint64_t in = ram.Alloc(64, 8);
  uint64_t out = ram.Alloc(64, 8);
  TestInHeader ih{48, 1, 31337, 1, 0, 0, 0, 0, 0};
  memcpy(ram.Host(in, 40), &ih, 40);
  // An unmapped readable buffer: the in header and the out header are reachable -> EIO.
  frontend::DriverQueue::Buffer bad[] = {
      {in, 40, false}, {uint64_t{1} << 40, 8, false}, {out, 16, true}};
  int head = s->queue(1).Add(bad, 3, true);
  s->Kick(1);
  auto used = WaitUsed(*s, 1, 1);
  NASSERT_EQ(used.size(), size_t{1});
  NEXPECT_EQ(used[0].id, static_cast<uint32_t>(head));
  NEXPECT_EQ(used[0].len, 16u);
  TestOutHeader oh = ReadOut(*s, out);
  NEXPECT_EQ(oh.error, -EIO);
  NEXPECT_EQ(oh.unique, 31337u);
  NEXPECT_EQ(oh.len, 16u);
  // A loop with no writable part: completed with length 0.
  frontend::DriverQueue::Buffer two[] = {{in, 40, false}, {in + 40, 8, false}};
  head = s->queue(1).Add(two, 2, false);
  auto chain = s->queue(1).ChainOf(static_cast<uint16_t>(head));
  s->queue(1).Desc(chain.back())->flags |= VIRTQ_DESC_F_NEXT;
  s->queue(1).Desc(chain.back())->next = chain.front();
  s->Kick(1);
  used = WaitUsed(*s, 1, 1);
  NASSERT_EQ(used.size(), size_t{1});
  NEXPECT_EQ(used[0].len, 0u);
  NEXPECT_EQ(h.backend->GetStats().bad_chains, 2u);
  // The queue keeps working.
  Submitted sub = SubmitEcho(*s, 1, 9, "after", 16);
  NEXPECT_EQ(WaitUsed(*s, 1, 1).size(), size_t{1});
  NEXPECT_EQ(ReadOut(*s, sub.out_gpa).unique, 9u);
}

NTEST(VhostFaults, BrokenRingIsStoppedAndRestartable) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  // The avail index jumps more than the queue size ahead.
  s->queue(1).SetAvailIdxRaw(static_cast<uint16_t>(s->queue(1).size() + 5));
  s->Kick(1);
  struct pollfd p = {s->err_fd(1), POLLIN, 0};
  NEXPECT_EQ(::poll(&p, 1, 5000), 1);  // the error eventfd was signalled
  NEXPECT_EQ(h.backend->GetStats().broken_queues, 1u);
  // A head index out of range on the hiprio queue breaks that ring too.
  s->queue(0).PushAvailRaw(1000);
  s->Kick(0);
  NASSERT_TRUE(WaitFor([&] { return h.backend->GetStats().broken_queues == 2; }));
  // The guest reboots: the rings restart and work again.
  std::string err;
  NASSERT_EQ(s->Stop(nullptr, &err), 0);
  NASSERT_EQ(s->Start(&err), 0);
  Submitted sub = SubmitEcho(*s, 1, 3, "reborn", 16);
  NEXPECT_EQ(WaitUsed(*s, 1, 1).size(), size_t{1});
  NEXPECT_EQ(ReadOut(*s, sub.out_gpa).unique, 3u);
}

NTEST(VhostFaults, DuplicateHeadInFlightBreaksTheRing) {
  AsyncSink sink(false);
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  Submitted first = SubmitEcho(*s, 1, 1, "one", 16);
  NASSERT_TRUE(WaitFor([&] { return sink.parked() == 1; }));
  s->queue(1).PushAvailRaw(static_cast<uint16_t>(first.head));
  s->Kick(1);
  NASSERT_TRUE(WaitFor([&] { return h.backend->GetStats().broken_queues == 1; }));
  sink.ReleaseAll();
  NEXPECT_EQ(sink.requests.load(), 1);
}

NTEST(VhostFaults, OverlappingRingsCannotPinTheWorker) {
  EchoSink sink;
  Harness h(&sink);
  auto s = h.Connect();
  NASSERT_TRUE(s != nullptr);
  auto& c = s->client();
  auto& q = s->queue(1);
  // Re-point queue 1 with its used ring on top of its avail ring: every used-ring write by the
  // backend moves the avail index the guest "published".
  NASSERT_EQ(c.SetVringState(VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
  uint32_t base = 0;
  NASSERT_EQ(c.GetVringBase(1, &base), 0);
  auto& ram = s->ram();
  NASSERT_EQ(
      c.SetVringAddr(1, ram.Uva(q.desc_gpa()), ram.Uva(q.avail_gpa()), ram.Uva(q.avail_gpa()), 0),
      0);
  UniqueFd kick = MakeEventFd();
  NASSERT_EQ(c.SetVringFd(VHOST_USER_SET_VRING_KICK, 1, kick.get()), 0);
  NASSERT_EQ(c.SetVringState(VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
  for (int i = 0; i < 8; ++i) SubmitEcho(*s, 1, i + 1, "x", 16, false);
  q.Publish();
  uint64_t one = 1;
  NASSERT_EQ(::write(kick.get(), &one, 8), 8);
  ::usleep(50 * 1000);
  // Whatever the worker is doing with this ring, the frontend can still stop it.
  NEXPECT_EQ(c.SetVringState(VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
  NEXPECT_EQ(c.GetVringBase(1, &base), 0);
  uint64_t features = 0;
  NEXPECT_EQ(c.GetU64(VHOST_USER_GET_FEATURES, &features), 0);
}
