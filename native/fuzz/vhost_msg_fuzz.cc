// libFuzzer target: vhost-user messages (bytes + attached fds) through the real framing code
// (recvmsg with SCM_RIGHTS, CheckFraming) into the device state machine (memory table, ring
// configuration, start/stop), then one drain of every started ring over memory whose contents
// also come from the input.
//
// Input: a sequence of records { u8 fd_spec; VhostUserHeader; payload[header.size] } (the last
// payload may be short). fd_spec bits 0-3: number of fds (0..15, more than we accept on purpose),
// bit 4: memfds instead of eventfds, bit 5: a zero-sized memfd. The whole input is also written at
// the start of every memfd, so ring indices and descriptors are fuzzed too.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/log.h"
#include "transport/request.h"
#include "vhost/backend.h"
#include "vhost/device.h"

using namespace nydus::vhost;

namespace {

constexpr size_t kMemfdSize = 1 << 20;

// Answers like a FUSE session would: an out header when there is room, nothing otherwise.
class Sink : public nydus::transport::FuseRequestSink {
 public:
  void OnRequest(nydus::transport::FuseRequest* r) override {
    uint8_t hdr[16] = {16, 0, 0, 0};
    size_t n = 0;
    for (const auto& s : r->out()) {
      size_t take = std::min(s.len, sizeof(hdr) - n);
      memcpy(s.base, hdr + n, take);
      n += take;
      if (n == sizeof(hdr)) break;
    }
    r->Complete(static_cast<uint32_t>(n == sizeof(hdr) ? n : 0));
  }
};

struct Fixture {
  Fixture() {
    counters = std::make_shared<BackendCounters>();
    DeviceOptions o;
    o.num_request_queues = 2;
    o.max_queue_size = 256;
    o.spawn_workers = false;  // rings are drained synchronously below
    o.stop_drain = std::chrono::milliseconds(0);
    o.max_rounds_per_drain = 2;
    device = std::make_unique<VhostUserFsDevice>(o, &sink, counters);
  }
  Sink sink;
  std::shared_ptr<BackendCounters> counters;
  std::unique_ptr<VhostUserFsDevice> device;
};

int MakeFd(uint8_t spec, const uint8_t* data, size_t size) {
  if ((spec & 0x10) == 0) return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int fd = ::memfd_create("fuzz", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if ((spec & 0x20) == 0) {
    if (::ftruncate(fd, kMemfdSize) != 0) return fd;
    (void)!::pwrite(fd, data, std::min(size, kMemfdSize), 0);
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  nydus::SetLogLevel(nydus::LogLevel::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  // Write every record first (the socket buffer holds far more than -max_len), then EOF.
  size_t pos = 0;
  while (pos + 1 + sizeof(VhostUserHeader) <= size) {
    uint8_t spec = data[pos];
    VhostUserHeader h;
    memcpy(&h, data + pos + 1, sizeof(h));
    size_t body = std::min<size_t>(h.size, size - pos - 1 - sizeof(h));
    size_t len = sizeof(h) + body;
    std::vector<int> fds;
    for (int i = 0; i < (spec & 0xf); ++i) {
      int fd = MakeFd(spec, data, size);
      if (fd >= 0) fds.push_back(fd);
    }
    struct iovec iov = {const_cast<uint8_t*>(data + pos + 1), len};
    alignas(struct cmsghdr) char control[CMSG_SPACE(16 * sizeof(int))];
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (!fds.empty()) {
      mh.msg_control = control;
      mh.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    ssize_t sent = ::sendmsg(sv[0], &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (int fd : fds) ::close(fd);
    if (sent < 0) break;
    pos += 1 + len;
  }
  ::shutdown(sv[0], SHUT_WR);
  ServeConnection(f.device.get(), sv[1], -1, f.counters.get());
  for (uint32_t i = 0; i < f.device->num_queues(); ++i) {
    Vring& v = f.device->vring(i);
    if (v.running()) v.DrainForTest();
  }
  f.device->Disconnect();
  ::close(sv[0]);
  ::close(sv[1]);
  return 0;
}
