// vhost-user framing: header validation, per-request size and fd rules, reading messages with
// fds over a socketpair, and reply flags.
#include <errno.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "testing.h"
#include "vhost/message.h"
#include "vhost_test_util.h"

using namespace nydus::vhost;
using nydus::UniqueFd;

namespace {

struct Pair {
  Pair() {
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
  UniqueFd a, b;
};

Message Framed(uint32_t request, uint32_t size, size_t fds) {
  Message m;
  m.header = {request, VHOST_USER_VERSION, size};
  for (size_t i = 0; i < fds; ++i) m.fds[m.num_fds++] = testing::MakeEventFd();
  return m;
}

void SetU64(Message* m, uint64_t v) { memcpy(m->payload.data(), &v, 8); }

}  // namespace

NTEST(VhostMessage, HeaderValidity) {
  NEXPECT_TRUE((VhostUserHeader{1, 0x1, 0}).IsValid());
  NEXPECT_TRUE((VhostUserHeader{1, 0x9, 8}).IsValid());    // NEED_REPLY
  NEXPECT_FALSE((VhostUserHeader{1, 0x0, 0}).IsValid());   // version 0
  NEXPECT_FALSE((VhostUserHeader{1, 0x2, 0}).IsValid());   // version 2
  NEXPECT_FALSE((VhostUserHeader{1, 0x5, 0}).IsValid());   // a reply
  NEXPECT_FALSE((VhostUserHeader{1, 0x11, 0}).IsValid());  // reserved bit
  NEXPECT_FALSE((VhostUserHeader{1, 0x1, kMaxPayloadSize + 1}).IsValid());
  NEXPECT_EQ(VHOST_USER_REPLY_FLAGS, 0x5u);
}

NTEST(VhostMessage, FramingSizes) {
  std::string err;
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_GET_FEATURES, 0, 0), &err));
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_GET_FEATURES, 8, 0), &err));
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_SET_FEATURES, 8, 0), &err));
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_SET_FEATURES, 4, 0), &err));
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_SET_VRING_NUM, 8, 0), &err));
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_SET_VRING_NUM, 4, 0), &err));
  NEXPECT_TRUE(err.find("SET_VRING_NUM") != std::string::npos);
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_SET_VRING_ADDR, 40, 0), &err));
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_SET_VRING_ADDR, 48, 0), &err));
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_ADD_MEM_REG, 40, 1), &err));
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_ADD_MEM_REG, 40, 0), &err));
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_REM_MEM_REG, 40, 0), &err));
  NEXPECT_TRUE(CheckFraming(Framed(VHOST_USER_REM_MEM_REG, 40, 1), &err));  // tolerated
  // Unknown ids pass framing (the device refuses them) unless they carry fds.
  NEXPECT_TRUE(CheckFraming(Framed(99, 16, 0), &err));
  NEXPECT_FALSE(CheckFraming(Framed(99, 16, 1), &err));
}

NTEST(VhostMessage, FdsOnlyWhereAllowed) {
  std::string err;
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_GET_FEATURES, 0, 1), &err));
  NEXPECT_TRUE(err.find("fds") != std::string::npos);
  NEXPECT_FALSE(CheckFraming(Framed(VHOST_USER_SET_VRING_NUM, 8, 1), &err));
  // KICK/CALL/ERR: the NOFD bit must match the attachment.
  Message call = Framed(VHOST_USER_SET_VRING_CALL, 8, 1);
  SetU64(&call, 1);
  NEXPECT_TRUE(CheckFraming(call, &err));
  Message nofd_with_fd = Framed(VHOST_USER_SET_VRING_CALL, 8, 1);
  SetU64(&nofd_with_fd, 1 | VHOST_USER_VRING_NOFD_MASK);
  NEXPECT_FALSE(CheckFraming(nofd_with_fd, &err));
  Message fd_missing = Framed(VHOST_USER_SET_VRING_KICK, 8, 0);
  SetU64(&fd_missing, 0);
  NEXPECT_FALSE(CheckFraming(fd_missing, &err));
  Message nofd = Framed(VHOST_USER_SET_VRING_KICK, 8, 0);
  SetU64(&nofd, VHOST_USER_VRING_NOFD_MASK);
  NEXPECT_TRUE(CheckFraming(nofd, &err));
  Message junk_bits = Framed(VHOST_USER_SET_VRING_ERR, 8, 1);
  SetU64(&junk_bits, 0x10000);
  NEXPECT_FALSE(CheckFraming(junk_bits, &err));
}

NTEST(VhostMessage, MemTableCountsMustAgree) {
  std::string err;
  auto table = [](uint32_t nregions, uint32_t size, size_t fds) {
    Message m = Framed(VHOST_USER_SET_MEM_TABLE, size, fds);
    VhostUserMemoryHeader h{nregions, 0};
    memcpy(m.payload.data(), &h, sizeof(h));
    return m;
  };
  NEXPECT_TRUE(CheckFraming(table(2, 72, 2), &err));  // QEMU's observed message
  NEXPECT_TRUE(CheckFraming(table(0, 8, 0), &err));
  NEXPECT_FALSE(CheckFraming(table(2, 72, 1), &err));   // fd count
  NEXPECT_FALSE(CheckFraming(table(2, 80, 2), &err));   // size vs count
  NEXPECT_FALSE(CheckFraming(table(9, 296, 8), &err));  // over 8 regions
  NEXPECT_FALSE(CheckFraming(table(1, 4, 0), &err));    // shorter than its header
}

NTEST(VhostMessage, ReadsHeaderPayloadAndFds) {
  Pair p;
  UniqueFd efd = testing::MakeEventFd();
  int fd = efd.get();
  uint64_t v = 2;
  VhostUserHeader h{VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 8};
  NASSERT_EQ(SendMessage(p.a.get(), h, &v, &fd, 1), 0);
  Message m;
  std::string err;
  NASSERT_EQ(ReadMessage(p.b.get(), &m, &err), 0);
  NEXPECT_EQ(m.header.request, uint32_t{VHOST_USER_SET_VRING_CALL});
  NEXPECT_EQ(m.num_fds, size_t{1});
  NEXPECT_EQ(m.PayloadAs<VhostUserU64>().value, 2u);
  NEXPECT_TRUE(CheckFraming(m, &err));
  NEXPECT_TRUE(m.fds[0].valid());
  NEXPECT_NE(m.fds[0].get(), fd);  // a new descriptor for the same eventfd
}

NTEST(VhostMessage, PayloadInPiecesIsReassembled) {
  Pair p;
  VhostUserHeader h{VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, 40};
  uint8_t bytes[52];
  memcpy(bytes, &h, 12);
  for (int i = 0; i < 40; ++i) bytes[12 + i] = static_cast<uint8_t>(i);
  std::thread writer([&] {
    for (int i = 0; i < 52; i += 5) {
      (void)!::write(p.a.get(), bytes + i, std::min(5, 52 - i));
      ::usleep(1000);
    }
  });
  Message m;
  std::string err;
  NEXPECT_EQ(ReadMessage(p.b.get(), &m, &err), 0);
  writer.join();
  NEXPECT_EQ(m.payload[39], 39);
}

NTEST(VhostMessage, OversizeIsAProtocolError) {
  Pair p;
  VhostUserHeader h{VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 0x10000};
  NASSERT_EQ(::write(p.a.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
  Message m;
  std::string err;
  NEXPECT_EQ(ReadMessage(p.b.get(), &m, &err), -EPROTO);
  NEXPECT_TRUE(err.find("size") != std::string::npos);
}

NTEST(VhostMessage, TooManyFdsIsAProtocolError) {
  Pair p;
  std::vector<UniqueFd> efds;
  std::vector<int> raw;
  for (int i = 0; i < 12; ++i) {
    efds.push_back(testing::MakeEventFd());
    raw.push_back(efds.back().get());
  }
  VhostUserHeader h{VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0};
  NASSERT_EQ(SendMessage(p.a.get(), h, nullptr, raw.data(), raw.size()), 0);
  Message m;
  std::string err;
  NEXPECT_EQ(ReadMessage(p.b.get(), &m, &err), -EPROTO);
  NEXPECT_TRUE(err.find("too many") != std::string::npos);
}

NTEST(VhostMessage, EofCases) {
  {
    Pair p;
    p.a.reset();
    Message m;
    std::string err;
    NEXPECT_EQ(ReadMessage(p.b.get(), &m, &err), -ECONNRESET);
  }
  {
    Pair p;
    uint8_t half[6] = {1, 0, 0, 0, 1, 0};
    (void)!::write(p.a.get(), half, sizeof(half));
    p.a.reset();
    Message m;
    std::string err;
    NEXPECT_EQ(ReadMessage(p.b.get(), &m, &err), -EPROTO);
  }
  {
    Pair p;
    VhostUserHeader h{VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8};
    (void)!::write(p.a.get(), &h, sizeof(h));
    (void)!::write(p.a.get(), "abc", 3);
    p.a.reset();
    Message m;
    std::string err;
    NEXPECT_EQ(ReadMessage(p.b.get(), &m, &err), -EPROTO);
  }
}

NTEST(VhostMessage, RepliesCarryFlags0x5) {
  Pair p;
  NASSERT_EQ(SendReplyU64(p.a.get(), VHOST_USER_GET_FEATURES, 0x1234), 0);
  uint8_t buf[20];
  NASSERT_EQ(::read(p.b.get(), buf, sizeof(buf)), 20);
  VhostUserHeader h;
  memcpy(&h, buf, 12);
  NEXPECT_EQ(h.flags, 0x5u);
  NEXPECT_EQ(h.request, uint32_t{VHOST_USER_GET_FEATURES});
  NEXPECT_EQ(h.size, 8u);
}
