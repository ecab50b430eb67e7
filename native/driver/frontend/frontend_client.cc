#include "driver/frontend/frontend_client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cinttypes>
#include <cstdio>

#include "vhost/message.h"

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

int VhostUserFrontend::Fail(int rc, const std::string& what) {
  last_error_ = what;
  return rc;
}

int VhostUserFrontend::Connect(const std::string& path, std::string* error) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    *error = "socket path too long: " + path;
    return -ENAMETOOLONG;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *error = std::string("socket: ") + strerror(errno);
    return -errno;
  }
  if (::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    *error = "connect " + path + ": " + strerror(err);
    return -err;
  }
  fd_ = std::move(fd);
  return 0;
}

void VhostUserFrontend::Trace(uint32_t request, const char* detail) {
  std::string name = RequestName(request);
  if (name.rfind("VHOST_USER_", 0) == 0) name = name.substr(11);
  if (detail != nullptr && detail[0] != '\0') name += std::string(" ") + detail;
  trace_.push_back(std::move(name));
}

bool VhostUserFrontend::WantsAck(uint32_t request) const {
  if (!reply_ack_) return false;
  switch (ack_policy_) {
    case AckPolicy::kNone:
      return false;
    case AckPolicy::kMemoryUpdates:
      return request == VHOST_USER_SET_MEM_TABLE || request == VHOST_USER_ADD_MEM_REG ||
             request == VHOST_USER_REM_MEM_REG || request == VHOST_USER_SET_SLAVE_REQ_FD;
    case AckPolicy::kEveryMessage:
      return true;
  }
  return false;
}

int VhostUserFrontend::Send(uint32_t request, const void* payload, uint32_t size, const int* fds,
                            size_t num_fds, bool need_reply) {
  if (!fd_.valid()) return Fail(-ENOTCONN, "not connected");
  VhostUserHeader h{request, VHOST_USER_VERSION | (need_reply ? VHOST_USER_NEED_REPLY_MASK : 0u),
                    size};
  int rc = SendMessage(fd_.get(), h, payload, fds, num_fds);
  if (rc != 0) return Fail(rc, std::string("send ") + RequestName(request) + ": " + strerror(-rc));
  return 0;
}

int VhostUserFrontend::Recv(uint32_t request, void* out, uint32_t size) {
  struct pollfd p = {fd_.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms_);
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    return Fail(-ETIMEDOUT, std::string("no reply to ") + RequestName(request) + " in time");
  }
  // The reply flag is not a valid request header bit, so read the raw header here.
  VhostUserHeader h;
  size_t got = 0;
  while (got < sizeof(h)) {
    ssize_t r = ::recv(fd_.get(), reinterpret_cast<uint8_t*>(&h) + got, sizeof(h) - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      return Fail(-ECONNRESET, std::string("connection closed waiting for the ") +
                                   RequestName(request) + " reply");
    }
    got += static_cast<size_t>(r);
  }
  char buf[200];
  if (h.flags != VHOST_USER_REPLY_FLAGS || h.request != request || h.size != size) {
    std::snprintf(buf, sizeof(buf),
                  "malformed reply to %s: request %u flags 0x%x size %u (want flags 0x5 size %u)",
                  RequestName(request), h.request, h.flags, h.size, size);
    return Fail(-EPROTO, buf);
  }
  got = 0;
  while (got < size) {
    ssize_t r = ::recv(fd_.get(), static_cast<uint8_t*>(out) + got, size - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Fail(-ECONNRESET, "connection closed in a reply payload");
    got += static_cast<size_t>(r);
  }
  return 0;
}

int VhostUserFrontend::MaybeAck(uint32_t request, bool need_reply) {
  if (!need_reply) return 0;
  uint64_t v = 0;
  int rc = Recv(request, &v, sizeof(v));
  if (rc != 0) return rc;
  if (v != 0) {
    return Fail(-EIO, std::string("backend refused ") + RequestName(request) + " (ack " +
                          std::to_string(v) + ")");
  }
  return 0;
}

int VhostUserFrontend::GetU64(uint32_t request, uint64_t* value) {
  Trace(request, "");
  int rc = Send(request, nullptr, 0, nullptr, 0, false);
  if (rc == 0) rc = Recv(request, value, sizeof(*value));
  return rc;
}

int VhostUserFrontend::SetU64(uint32_t request, uint64_t value) {
  char d[32];
  std::snprintf(d, sizeof(d), "0x%" PRIx64, value);
  Trace(request, d);
  bool ack = WantsAck(request);
  int rc = Send(request, &value, sizeof(value), nullptr, 0, ack);
  return rc != 0 ? rc : MaybeAck(request, ack);
}

int VhostUserFrontend::Simple(uint32_t request) {
  Trace(request, "");
  bool ack = WantsAck(request);
  int rc = Send(request, nullptr, 0, nullptr, 0, ack);
  return rc != 0 ? rc : MaybeAck(request, ack);
}

int VhostUserFrontend::SetVringState(uint32_t request, uint32_t index, uint32_t num) {
  char d[32];
  std::snprintf(d, sizeof(d), "%u %u", index, num);
  Trace(request, d);
  VhostUserVringState s{index, num};
  bool ack = WantsAck(request);
  int rc = Send(request, &s, sizeof(s), nullptr, 0, ack);
  return rc != 0 ? rc : MaybeAck(request, ack);
}

int VhostUserFrontend::GetVringBase(uint32_t index, uint32_t* num) {
  char d[16];
  std::snprintf(d, sizeof(d), "%u", index);
  Trace(VHOST_USER_GET_VRING_BASE, d);
  VhostUserVringState s{index, 0};
  int rc = Send(VHOST_USER_GET_VRING_BASE, &s, sizeof(s), nullptr, 0, false);
  if (rc == 0) rc = Recv(VHOST_USER_GET_VRING_BASE, &s, sizeof(s));
  if (rc == 0 && s.index != index) rc = Fail(-EPROTO, "GET_VRING_BASE reply for another ring");
  if (rc == 0) *num = s.num;
  return rc;
}

int VhostUserFrontend::SetVringAddr(uint32_t index, uint64_t desc, uint64_t used, uint64_t avail,
                                    uint64_t log) {
  char d[16];
  std::snprintf(d, sizeof(d), "%u", index);
  Trace(VHOST_USER_SET_VRING_ADDR, d);
  VhostUserVringAddr a{index, 0, desc, used, avail, log};
  bool ack = WantsAck(VHOST_USER_SET_VRING_ADDR);
  int rc = Send(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), nullptr, 0, ack);
  return rc != 0 ? rc : MaybeAck(VHOST_USER_SET_VRING_ADDR, ack);
}

int VhostUserFrontend::SetVringFd(uint32_t request, uint32_t index, int fd) {
  char d[32];
  std::snprintf(d, sizeof(d), "%u%s", index, fd < 0 ? " nofd" : "");
  Trace(request, d);
  uint64_t v = index | (fd < 0 ? VHOST_USER_VRING_NOFD_MASK : 0);
  bool ack = WantsAck(request);
  int rc = Send(request, &v, sizeof(v), fd < 0 ? nullptr : &fd, fd < 0 ? 0 : 1, ack);
  return rc != 0 ? rc : MaybeAck(request, ack);
}

int VhostUserFrontend::SetMemTable(const std::vector<VhostUserMemoryRegion>& regions, int fd) {
  char d[32];
  std::snprintf(d, sizeof(d), "%zu regions", regions.size());
  Trace(VHOST_USER_SET_MEM_TABLE, d);
  uint8_t buf[kMaxMemTablePayload];
  VhostUserMemoryHeader h{static_cast<uint32_t>(regions.size()), 0};
  if (!h.IsValid()) return Fail(-EINVAL, "too many regions for SET_MEM_TABLE");
  memcpy(buf, &h, sizeof(h));
  int fds[kMaxMemTableRegions];
  for (size_t i = 0; i < regions.size(); ++i) {
    memcpy(buf + sizeof(h) + i * sizeof(VhostUserMemoryRegion), &regions[i],
           sizeof(VhostUserMemoryRegion));
    fds[i] = fd;  // QEMU sends one fd per region, even when they are the same file
  }
  bool ack = WantsAck(VHOST_USER_SET_MEM_TABLE);
  int rc = Send(VHOST_USER_SET_MEM_TABLE, buf, h.PayloadSize(), fds, regions.size(), ack);
  return rc != 0 ? rc : MaybeAck(VHOST_USER_SET_MEM_TABLE, ack);
}

int VhostUserFrontend::AddMemReg(const VhostUserMemoryRegion& region, int fd) {
  char d[64];
  std::snprintf(d, sizeof(d), "gpa=0x%" PRIx64 " size=0x%" PRIx64, region.guest_phys_addr,
                region.memory_size);
  Trace(VHOST_USER_ADD_MEM_REG, d);
  VhostUserSingleMemRegion p{0, region};
  bool ack = WantsAck(VHOST_USER_ADD_MEM_REG);
  int rc = Send(VHOST_USER_ADD_MEM_REG, &p, sizeof(p), &fd, 1, ack);
  return rc != 0 ? rc : MaybeAck(VHOST_USER_ADD_MEM_REG, ack);
}

int VhostUserFrontend::RemMemReg(const VhostUserMemoryRegion& region) {
  char d[64];
  std::snprintf(d, sizeof(d), "gpa=0x%" PRIx64, region.guest_phys_addr);
  Trace(VHOST_USER_REM_MEM_REG, d);
  VhostUserSingleMemRegion p{0, region};
  p.region.mmap_offset = 0;  // QEMU sends 0 here
  bool ack = WantsAck(VHOST_USER_REM_MEM_REG);
  int rc = Send(VHOST_USER_REM_MEM_REG, &p, sizeof(p), nullptr, 0, ack);
  return rc != 0 ? rc : MaybeAck(VHOST_USER_REM_MEM_REG, ack);
}

int VhostUserFrontend::SetSlaveReqFd() {
  Trace(VHOST_USER_SET_SLAVE_REQ_FD, "");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  slave_fd_.reset(sv[0]);
  UniqueFd theirs(sv[1]);
  int fd = theirs.get();
  bool ack = WantsAck(VHOST_USER_SET_SLAVE_REQ_FD);
  int rc = Send(VHOST_USER_SET_SLAVE_REQ_FD, nullptr, 0, &fd, 1, ack);
  return rc != 0 ? rc : MaybeAck(VHOST_USER_SET_SLAVE_REQ_FD, ack);
}

}  // namespace nydus::driver::frontend
