// fault KIND: injects one malformed chain, FUSE request, vhost-user message or disconnect, and
// reports how the backend reacted and whether it is still serving (same connection, and a fresh
// connection once this one is closed).
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <functional>

#include "driver/cli/driver.h"

namespace nydus::driver {
namespace {

using vhost::VirtqDesc;

constexpr int kFaultWaitMs = 2000;

struct Outcome {
  std::string reaction;  // see CmdFault's JSON
  std::string detail;
  int reply_error = 0;
};

bool ConnectionClosed(int fd, int wait_ms) {
  struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, wait_ms) <= 0) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN);
}

bool Readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

// A GETATTR(root) whose chain `corrupt` may damage before it is published.
Outcome RequestFault(Connection* c, RequestSpec spec,
                     const std::function<void(int head)>& corrupt) {
  Outcome o;
  int slot = c->fuse->Submit(spec, false);
  if (slot < 0) return {"driver-error", "submit failed: " + std::string(strerror(-slot))};
  if (corrupt) corrupt(c->fuse->head_of(slot));
  c->session->Kick(spec.queue);
  std::vector<Completion> done;
  int rc = c->fuse->Poll(spec.queue, &done, kFaultWaitMs, false);
  for (const auto& d : done) {
    if (d.slot != slot) continue;
    if (!d.has_header) return {"empty-completion", "used length " + std::to_string(d.used_len)};
    o.reply_error = d.out.error;
    if (d.out.error == -EIO) return {"reply-eio", "", -EIO};
    if (d.out.error != 0) {
      o.reaction = "reply-error";
      o.detail = strerror(-d.out.error);
      return o;
    }
    return {"reply-ok", "", 0};
  }
  int fd = c->session->client().fd();
  if (ConnectionClosed(fd, 200)) return {"connection-closed", "backend closed the socket"};
  if (Readable(c->session->err_fd(spec.queue))) {
    return {"queue-broken", "error eventfd signalled"};
  }
  return {rc == -ETIMEDOUT ? "no-reply" : "driver-error", strerror(rc < 0 ? -rc : rc)};
}

RequestSpec Getattr() {
  static fuse_getattr_in in{};
  RequestSpec r;
  r.opcode = FUSE_GETATTR;
  r.nodeid = kRootNodeId;
  r.args = &in;
  r.args_len = sizeof(in);
  r.out_args_len = sizeof(fuse_attr_out);
  return r;
}

// Sends raw bytes (a malformed message) with optional fds; reports whether the socket closed.
Outcome RawMessage(Connection* c, const void* bytes, size_t len, size_t nfds) {
  int fd = c->session->client().fd();
  std::vector<int> fds;
  for (size_t i = 0; i < nfds; ++i) fds.push_back(::eventfd(0, EFD_CLOEXEC));
  struct iovec iov = {const_cast<void*>(bytes), len};
  alignas(struct cmsghdr) char control[CMSG_SPACE(32 * sizeof(int))];
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds.data(), nfds * sizeof(int));
  }
  ssize_t n = ::sendmsg(fd, &mh, MSG_NOSIGNAL);
  for (int f : fds) ::close(f);
  if (n < 0) return {"connection-closed", strerror(errno)};
  if (ConnectionClosed(fd, kFaultWaitMs)) return {"connection-closed", "backend closed the socket"};
  return {"ignored", "connection still open"};
}

Outcome MessageFault(Connection* c, uint32_t request, uint32_t size, size_t send_payload,
                     size_t nfds) {
  uint8_t buf[12 + 64] = {};
  vhost::VhostUserHeader h{request, vhost::VHOST_USER_VERSION, size};
  memcpy(buf, &h, sizeof(h));
  return RawMessage(c, buf, 12 + std::min<size_t>(send_payload, 64), nfds);
}

Outcome UnknownMessage(Connection* c) {
  auto& cl = c->session->client();
  bool ack = (c->session->acked_protocol_features() &
              vhost::FeatureBit(vhost::VHOST_USER_PROTOCOL_F_REPLY_ACK)) != 0;
  if (cl.Send(99, nullptr, 0, nullptr, 0, ack) != 0) return {"connection-closed", cl.last_error()};
  if (!ack) {
    return ConnectionClosed(cl.fd(), kFaultWaitMs) ? Outcome{"connection-closed", ""}
                                                   : Outcome{"ignored", "no REPLY_ACK to ask"};
  }
  uint64_t v = 0;
  cl.set_timeout_ms(kFaultWaitMs);
  int rc = cl.Recv(99, &v, sizeof(v));
  if (rc == 0) return {v != 0 ? "refused" : "accepted", "ack " + std::to_string(v)};
  if (rc == -ETIMEDOUT) return {"no-reply", cl.last_error()};
  return {"connection-closed", cl.last_error()};
}

Outcome BadRingAddr(Connection* c) {
  auto& cl = c->session->client();
  uint32_t base = 0;
  if (cl.SetVringState(vhost::VHOST_USER_SET_VRING_ENABLE, 1, 0) != 0 ||
      cl.GetVringBase(1, &base) != 0) {
    return {"connection-closed", cl.last_error()};
  }
  const uint64_t bad = 0xdead0000000ull;  // not a frontend address of any region
  int rc = cl.SetVringAddr(1, bad, bad + 0x5000, bad + 0x4000, 0);
  if (rc == 0) rc = cl.SetVringState(vhost::VHOST_USER_SET_VRING_BASE, 1, base);
  if (rc == 0) {
    int kick = ::eventfd(0, EFD_CLOEXEC);
    rc = cl.SetVringFd(vhost::VHOST_USER_SET_VRING_KICK, 1, kick);
    ::close(kick);
  }
  if (rc == 0) rc = cl.SetVringState(vhost::VHOST_USER_SET_VRING_ENABLE, 1, 1);
  if (rc == -EIO) return {"refused", cl.last_error()};
  if (rc != 0 || ConnectionClosed(cl.fd(), 500)) return {"connection-closed", cl.last_error()};
  return {"accepted", "ring not started; requests on it are not served"};
}

const char* const kKinds[] = {"bad-addr",          "desc-loop",         "nested-indirect",
                              "indirect-bad-len",  "next-out-of-range", "zero-length",
                              "write-before-read", "avail-jump",        "head-out-of-range",
                              "truncated-fuse",    "short-fuse-header", "unknown-opcode",
                              "no-reply-space",    "oversize-msg",      "bad-size-msg",
                              "fd-on-plain-msg",   "too-many-fds",      "unknown-msg",
                              "half-message",      "abrupt-disconnect", "bad-ring-addr"};

Outcome Run(const std::string& kind, Connection* c) {
  auto& q = c->session->queue(1);
  auto table = [&](int head) { return q.IndirectTable(static_cast<uint16_t>(head)); };
  if (kind == "bad-addr") {
    return RequestFault(c, Getattr(), [&](int h) { table(h)[1].addr = uint64_t{1} << 40; });
  }
  if (kind == "desc-loop") {
    RequestSpec r = Getattr();
    r.direct = true;
    return RequestFault(c, r, [&](int h) {
      auto chain = q.ChainOf(static_cast<uint16_t>(h));
      VirtqDesc* last = q.Desc(chain.back());
      last->flags |= vhost::VIRTQ_DESC_F_NEXT;
      last->next = chain.front();
    });
  }
  if (kind == "nested-indirect") {
    return RequestFault(c, Getattr(),
                        [&](int h) { table(h)[1].flags |= vhost::VIRTQ_DESC_F_INDIRECT; });
  }
  if (kind == "indirect-bad-len") {
    return RequestFault(c, Getattr(), [&](int h) { q.Desc(static_cast<uint16_t>(h))->len = 33; });
  }
  if (kind == "next-out-of-range") {
    return RequestFault(c, Getattr(), [&](int h) { table(h)[0].next = 500; });
  }
  if (kind == "zero-length") {
    return RequestFault(c, Getattr(), [&](int h) { table(h)[1].len = 0; });
  }
  if (kind == "write-before-read") {
    // The out-args buffer turns device-readable after the writable out header.
    return RequestFault(c, Getattr(),
                        [&](int h) { table(h)[3].flags &= ~vhost::VIRTQ_DESC_F_WRITE; });
  }
  if (kind == "avail-jump" || kind == "head-out-of-range") {
    if (kind == "avail-jump") {
      q.SetAvailIdxRaw(static_cast<uint16_t>(q.avail_idx() + q.size() + 5));
    } else {
      q.PushAvailRaw(static_cast<uint16_t>(q.size() + 7));
    }
    c->session->Kick(1);
    int fd = c->session->client().fd();
    if (ConnectionClosed(fd, kFaultWaitMs)) return {"connection-closed", "backend closed"};
    if (Readable(c->session->err_fd(1))) return {"queue-broken", "error eventfd signalled"};
    return {"no-reply", "nothing observable"};
  }
  if (kind == "truncated-fuse") {
    RequestSpec r = Getattr();
    r.in_len_override = 40 + 16 + 100;  // claims more than the readable bytes
    return RequestFault(c, r, nullptr);
  }
  if (kind == "short-fuse-header") {
    RequestSpec r = Getattr();
    r.in_len_override = 20;  // shorter than fuse_in_header itself
    return RequestFault(c, r, nullptr);
  }
  if (kind == "unknown-opcode") {
    RequestSpec r = Getattr();
    r.opcode = 9999;
    return RequestFault(c, r, nullptr);
  }
  if (kind == "no-reply-space") {
    RequestSpec r = Getattr();
    r.forget_style = true;  // only readable bytes: nowhere to put a reply
    return RequestFault(c, r, nullptr);
  }
  if (kind == "oversize-msg")
    return MessageFault(c, vhost::VHOST_USER_SET_FEATURES, 0x10000, 64, 0);
  if (kind == "bad-size-msg") return MessageFault(c, vhost::VHOST_USER_SET_VRING_NUM, 4, 4, 0);
  if (kind == "fd-on-plain-msg") return MessageFault(c, vhost::VHOST_USER_GET_FEATURES, 0, 0, 1);
  if (kind == "too-many-fds") return MessageFault(c, vhost::VHOST_USER_GET_QUEUE_NUM, 0, 0, 12);
  if (kind == "unknown-msg") return UnknownMessage(c);
  if (kind == "bad-ring-addr") return BadRingAddr(c);
  if (kind == "half-message") {
    uint8_t half[6] = {1, 0, 0, 0, 1, 0};
    (void)!::write(c->session->client().fd(), half, sizeof(half));
    c->session->client().Close();
    return {"disconnected-by-driver", "6 bytes of a header, then EOF"};
  }
  if (kind == "abrupt-disconnect") {
    for (int i = 0; i < 4; ++i) {
      RequestSpec r;
      r.opcode = FUSE_STATFS;
      r.nodeid = kRootNodeId;
      r.out_args_len = sizeof(fuse_statfs_out);
      c->fuse->Submit(r, true);
    }
    c->session->client().Close();
    return {"disconnected-by-driver", "closed with 4 requests in flight"};
  }
  return {"unknown-kind", kind};
}

}  // namespace

int CmdFault(const DriverOptions& o) {
  if (o.args.empty()) return Fail("fault needs a KIND (or `list`)");
  const std::string kind = o.args[0];
  if (kind == "list") {
    for (const char* k : kKinds) std::printf("%s\n", k);
    return 0;
  }
  bool known = false;
  for (const char* k : kKinds) known = known || kind == k;
  if (!known) return Fail("unknown fault kind " + kind + " (try `fault list`)");
  Connection c;
  std::string error;
  if (OpenConnection(o, 8, 128 * 1024, &c, &error) != 0) return Fail(error);
  const int pid = c.server_pid;
  c.fuse->set_timeout_ms(kFaultWaitMs);
  Outcome out = Run(kind, &c);
  bool same_ok = false;
  if (c.session->client().connected() && !ConnectionClosed(c.session->client().fd(), 0)) {
    fuse_attr_out ao{};
    same_ok = c.fuse->Getattr(kRootNodeId, &ao) == 0;
  }
  ::usleep(100 * 1000);
  const bool alive_after_fault = pid > 0 && !ProcessExited(pid);
  c.session.reset();  // close this connection: one frontend at a time
  c.fuse.reset();
  bool fresh_ok = false;
  std::string fresh_error;
  DriverOptions fresh = o;
  fresh.timeout_ms = 5000;
  for (int attempt = 0; attempt < 30 && !fresh_ok; ++attempt) {
    Connection f;
    if (OpenConnection(fresh, 2, 64 * 1024, &f, &fresh_error) == 0) {
      fuse_attr_out ao{};
      fresh_ok = f.fuse->Getattr(kRootNodeId, &ao) == 0;
      break;
    }
    if (pid > 0 && ProcessExited(pid)) break;
    ::usleep(100 * 1000);
  }
  Json j;
  j.BeginObject()
      .Field("kind", kind)
      .Field("reaction", out.reaction)
      .Field("detail", out.detail)
      .Field("reply_error", out.reply_error)
      .Field("same_connection_ok", same_ok)
      .Field("server_alive_after_fault", alive_after_fault)
      .Field("fresh_connection_ok", fresh_ok);
  if (!fresh_ok) j.Field("fresh_connection_error", fresh_error);
  j.Field("server_alive_at_end", pid > 0 && !ProcessExited(pid)).Field("server_pid", pid);
  j.EndObject();
  std::printf("%s\n", j.str().c_str());
  return 0;
}

}  // namespace nydus::driver
