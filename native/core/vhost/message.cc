#include "vhost/message.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>

namespace nydus::vhost {
namespace {

// Room for more fds than we accept, so "too many" is seen as such rather than as a truncation.
constexpr size_t kCmsgFds = 32;

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

// Collects SCM_RIGHTS fds from one recvmsg into msg (closing any beyond the limit).
// Returns false when the frontend attached more than we accept or the kernel truncated them.
bool CollectFds(struct msghdr* mh, Message* msg, size_t* total) {
  bool ok = (mh->msg_flags & MSG_CTRUNC) == 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(mh); c != nullptr; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      // SAFETY: CMSG_DATA points at n ints inside our own control buffer; memcpy avoids an
      // unaligned int load.
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      ++*total;
      if (msg->num_fds < kMaxFdsPerMessage) {
        msg->fds[msg->num_fds++].reset(fd);
      } else {
        ::close(fd);
        ok = false;
      }
    }
  }
  return ok;
}

// Reads exactly len bytes (header remainder or payload), collecting fds that ride along.
// Returns 0, -ECONNRESET (EOF before any byte when at_start), -EPROTO (EOF mid-message,
// fd trouble) or -errno.
int ReadFull(int sock, uint8_t* dst, size_t len, bool at_start, Message* msg, size_t* fd_total,
             std::string* error) {
  size_t got = 0;
  while (got < len) {
    struct iovec iov = {dst + got, len - got};
    alignas(struct cmsghdr) char control[CMSG_SPACE(kCmsgFds * sizeof(int))];
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      *error = Format("recvmsg: %s", strerror(err));
      return -err;
    }
    if (!CollectFds(&mh, msg, fd_total)) {
      *error = Format("too many file descriptors attached (%zu, at most %zu)", *fd_total,
                      kMaxFdsPerMessage);
      return -EPROTO;
    }
    if (n == 0) {
      if (at_start && got == 0) return -ECONNRESET;
      *error = Format("connection closed in the middle of a message (%zu of %zu bytes)", got, len);
      return -EPROTO;
    }
    got += static_cast<size_t>(n);
    at_start = false;
  }
  return 0;
}

struct FramingRule {
  // Exact payload size, or kVariable when the request carries its own count.
  uint32_t size;
  uint8_t min_fds;
  uint8_t max_fds;
};
constexpr uint32_t kVariable = UINT32_MAX;
constexpr uint32_t kAnySize = UINT32_MAX - 1;

FramingRule RuleFor(uint32_t request) {
  switch (request) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_RESET_DEVICE:
    case VHOST_USER_GET_MAX_MEM_SLOTS:
    case VHOST_USER_GET_STATUS:
      return {0, 0, 0};
    case VHOST_USER_SET_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
    case VHOST_USER_SET_STATUS:
      return {sizeof(VhostUserU64), 0, 0};
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
    case VHOST_USER_SET_VRING_ENDIAN:
      return {sizeof(VhostUserVringState), 0, 0};
    case VHOST_USER_SET_VRING_ADDR:
      return {sizeof(VhostUserVringAddr), 0, 0};
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
      return {sizeof(VhostUserU64), 0, 1};  // fd presence must match the NOFD bit
    case VHOST_USER_SET_MEM_TABLE:
      return {kVariable, 0, kMaxMemTableRegions};
    case VHOST_USER_ADD_MEM_REG:
      return {sizeof(VhostUserSingleMemRegion), 1, 1};
    case VHOST_USER_REM_MEM_REG:
      // QEMU sends no fd; older frontends attached one. Tolerate it (it is closed).
      return {sizeof(VhostUserSingleMemRegion), 0, 1};
    case VHOST_USER_SET_LOG_BASE:
      return {16, 0, 1};
    case VHOST_USER_SET_LOG_FD:
    case VHOST_USER_SET_SLAVE_REQ_FD:
    case VHOST_USER_GPU_SET_SOCKET:
    case VHOST_USER_SET_DEVICE_STATE_FD:
      return {kAnySize, 0, 1};
    case VHOST_USER_SET_INFLIGHT_FD:
      return {kAnySize, 0, 1};
    default:
      // Requests we do not implement take no fds in any protocol version we know of, except the
      // ones listed above; anything else with fds is malformed.
      return {kAnySize, 0, 0};
  }
}

}  // namespace

int ReadMessage(int sock, Message* msg, std::string* error) {
  msg->CloseFds();
  size_t fd_total = 0;
  int rc = ReadFull(sock, reinterpret_cast<uint8_t*>(&msg->header), sizeof(msg->header), true, msg,
                    &fd_total, error);
  if (rc != 0) return rc;
  const VhostUserHeader& h = msg->header;
  if (!h.IsValid()) {
    *error = Format("invalid header for %s (%u): flags 0x%x, size %u (at most %u)",
                    RequestName(h.request), h.request, h.flags, h.size, kMaxPayloadSize);
    return -EPROTO;
  }
  if (h.size > 0) {
    rc = ReadFull(sock, msg->payload.data(), h.size, false, msg, &fd_total, error);
    if (rc != 0) return rc;
  }
  return 0;
}

bool CheckFraming(const Message& msg, std::string* error) {
  const VhostUserHeader& h = msg.header;
  const char* name = RequestName(h.request);
  FramingRule rule = RuleFor(h.request);
  if (rule.size == kVariable) {
    // SET_MEM_TABLE: {u32 nregions; u32 pad; region[nregions]}, one fd per region.
    if (h.size < sizeof(VhostUserMemoryHeader)) {
      *error = Format("%s payload of %u bytes is shorter than its header", name, h.size);
      return false;
    }
    auto mem = msg.PayloadAs<VhostUserMemoryHeader>();
    if (!mem.IsValid() || mem.PayloadSize() != h.size || mem.nregions != msg.num_fds) {
      *error = Format("%s with %u regions, %u payload bytes and %zu fds is inconsistent", name,
                      mem.nregions, h.size, msg.num_fds);
      return false;
    }
    return true;
  }
  if (rule.size != kAnySize && h.size != rule.size) {
    *error = Format("%s payload is %u bytes, expected %u", name, h.size, rule.size);
    return false;
  }
  if (msg.num_fds < rule.min_fds || msg.num_fds > rule.max_fds) {
    *error = Format("%s carries %zu fds, expected %u..%u", name, msg.num_fds, rule.min_fds,
                    rule.max_fds);
    return false;
  }
  if (h.request == VHOST_USER_SET_VRING_KICK || h.request == VHOST_USER_SET_VRING_CALL ||
      h.request == VHOST_USER_SET_VRING_ERR) {
    uint64_t v = msg.PayloadAs<VhostUserU64>().value;
    bool nofd = (v & VHOST_USER_VRING_NOFD_MASK) != 0;
    if (nofd != (msg.num_fds == 0) ||
        (v & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) != 0) {
      *error = Format("%s payload 0x%llx does not match %zu attached fds", name,
                      static_cast<unsigned long long>(v), msg.num_fds);
      return false;
    }
  }
  return true;
}

int SendMessage(int sock, const VhostUserHeader& header, const void* payload, const int* fds,
                size_t num_fds) {
  if (num_fds > kCmsgFds) return -EINVAL;
  uint8_t buf[sizeof(VhostUserHeader) + kMaxPayloadSize];
  size_t total = sizeof(header) + header.size;
  if (header.size > kMaxPayloadSize) {
    // Only the fault injector sends oversize messages; it uses the raw socket.
    return -EMSGSIZE;
  }
  memcpy(buf, &header, sizeof(header));
  if (header.size > 0) memcpy(buf + sizeof(header), payload, header.size);
  size_t sent = 0;
  bool first = true;
  while (sent < total) {
    struct iovec iov = {buf + sent, total - sent};
    alignas(struct cmsghdr) char control[CMSG_SPACE(kCmsgFds * sizeof(int))];
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (first && num_fds > 0) {
      mh.msg_control = control;
      mh.msg_controllen = CMSG_SPACE(num_fds * sizeof(int));
      struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(num_fds * sizeof(int));
      memcpy(CMSG_DATA(c), fds, num_fds * sizeof(int));
    }
    // MSG_NOSIGNAL: a vanished peer must be an error code, never a SIGPIPE.
    ssize_t n = ::sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    sent += static_cast<size_t>(n);
    first = false;
  }
  return 0;
}

int SendReply(int sock, uint32_t request, const void* payload, uint32_t size) {
  VhostUserHeader h{request, VHOST_USER_REPLY_FLAGS, size};
  return SendMessage(sock, h, payload, nullptr, 0);
}

const char* RequestName(uint32_t request) {
  switch (request) {
#define NYDUS_VHOST_NAME(x) \
  case VHOST_USER_##x:      \
    return "VHOST_USER_" #x;
    NYDUS_VHOST_NAME(GET_FEATURES)
    NYDUS_VHOST_NAME(SET_FEATURES)
    NYDUS_VHOST_NAME(SET_OWNER)
    NYDUS_VHOST_NAME(RESET_OWNER)
    NYDUS_VHOST_NAME(SET_MEM_TABLE)
    NYDUS_VHOST_NAME(SET_LOG_BASE)
    NYDUS_VHOST_NAME(SET_LOG_FD)
    NYDUS_VHOST_NAME(SET_VRING_NUM)
    NYDUS_VHOST_NAME(SET_VRING_ADDR)
    NYDUS_VHOST_NAME(SET_VRING_BASE)
    NYDUS_VHOST_NAME(GET_VRING_BASE)
    NYDUS_VHOST_NAME(SET_VRING_KICK)
    NYDUS_VHOST_NAME(SET_VRING_CALL)
    NYDUS_VHOST_NAME(SET_VRING_ERR)
    NYDUS_VHOST_NAME(GET_PROTOCOL_FEATURES)
    NYDUS_VHOST_NAME(SET_PROTOCOL_FEATURES)
    NYDUS_VHOST_NAME(GET_QUEUE_NUM)
    NYDUS_VHOST_NAME(SET_VRING_ENABLE)
    NYDUS_VHOST_NAME(SEND_RARP)
    NYDUS_VHOST_NAME(NET_SET_MTU)
    NYDUS_VHOST_NAME(SET_SLAVE_REQ_FD)
    NYDUS_VHOST_NAME(IOTLB_MSG)
    NYDUS_VHOST_NAME(SET_VRING_ENDIAN)
    NYDUS_VHOST_NAME(GET_CONFIG)
    NYDUS_VHOST_NAME(SET_CONFIG)
    NYDUS_VHOST_NAME(CREATE_CRYPTO_SESSION)
    NYDUS_VHOST_NAME(CLOSE_CRYPTO_SESSION)
    NYDUS_VHOST_NAME(POSTCOPY_ADVISE)
    NYDUS_VHOST_NAME(POSTCOPY_LISTEN)
    NYDUS_VHOST_NAME(POSTCOPY_END)
    NYDUS_VHOST_NAME(GET_INFLIGHT_FD)
    NYDUS_VHOST_NAME(SET_INFLIGHT_FD)
    NYDUS_VHOST_NAME(GPU_SET_SOCKET)
    NYDUS_VHOST_NAME(RESET_DEVICE)
    NYDUS_VHOST_NAME(VRING_KICK)
    NYDUS_VHOST_NAME(GET_MAX_MEM_SLOTS)
    NYDUS_VHOST_NAME(ADD_MEM_REG)
    NYDUS_VHOST_NAME(REM_MEM_REG)
    NYDUS_VHOST_NAME(SET_STATUS)
    NYDUS_VHOST_NAME(GET_STATUS)
    NYDUS_VHOST_NAME(GET_SHARED_OBJECT)
    NYDUS_VHOST_NAME(SET_DEVICE_STATE_FD)
    NYDUS_VHOST_NAME(CHECK_DEVICE_STATE)
#undef NYDUS_VHOST_NAME
    default:
      return "UNKNOWN";
  }
}

}  // namespace nydus::vhost
