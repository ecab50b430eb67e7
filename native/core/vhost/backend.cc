#include "vhost/backend.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

#include "abi/js_abi.h"
#include "common/log.h"
#include "common/unix_listen.h"
#include "vhost/device.h"
#include "vhost/message.h"

namespace nydus::vhost {

// TypeScript checks the same limits before attaching (abi/js_abi.h).
static_assert(abi::kMaxQueueSize == kMaxSplitQueueSize);

namespace {

constexpr const char* kLog = "vhost";

std::string Errno(const char* what, int err) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%s: %s", what, strerror(err));
  return buf;
}

}  // namespace

VhostUserFsBackend::VhostUserFsBackend(BackendOptions options, transport::FuseRequestSink* sink)
    : options_(std::move(options)), sink_(sink), counters_(std::make_shared<BackendCounters>()) {}

VhostUserFsBackend::~VhostUserFsBackend() { Stop(); }

int VhostUserFsBackend::Start(std::string* error) {
  if (control_.joinable()) {
    *error = "vhost-user backend already started";
    return -EBUSY;
  }
  if (options_.num_request_queues == 0 || options_.num_request_queues > abi::kMaxRequestQueues) {
    *error = "num_request_queues must be 1..254 (vring indexes are 8 bits, hiprio is extra)";
    return -EINVAL;
  }
  if (options_.max_queue_size == 0 || options_.max_queue_size > kMaxSplitQueueSize ||
      (options_.max_queue_size & (options_.max_queue_size - 1)) != 0) {
    *error = "max_queue_size must be a power of two up to 32768";
    return -EINVAL;
  }
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) {
    *error = Errno("eventfd", errno);
    return -errno;
  }
  if (options_.listen_fd >= 0) {
    listen_fd_.reset(options_.listen_fd);
    owns_listen_fd_ = false;
  } else {
    UniqueFd fd;
    int rc = ListenUnixSocket(options_.socket_path, 1, &fd, error);
    if (rc != 0) return rc;
    created_socket_file_ = true;
    listen_fd_ = std::move(fd);
    owns_listen_fd_ = true;
  }
  DeviceOptions d;
  d.num_request_queues = options_.num_request_queues;
  d.max_queue_size = options_.max_queue_size;
  d.stop_drain = options_.stop_drain;
  device_ = std::make_unique<VhostUserFsDevice>(d, sink_, counters_);
  stopping_.store(false);
  control_ = std::thread(&VhostUserFsBackend::ControlMain, this);
  NLOG_INFO(kLog, "vhost-user-fs backend listening on %s (%u request queues, queue size <= %u)",
            !options_.socket_path.empty() ? options_.socket_path.c_str() : "an inherited socket",
            options_.num_request_queues, options_.max_queue_size);
  return 0;
}

void VhostUserFsBackend::Stop() {
  if (control_.joinable()) {
    stopping_.store(true);
    uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof(one));
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      // Unblocks a control thread stuck reading a half-sent message.
      if (conn_fd_ >= 0) ::shutdown(conn_fd_, SHUT_RDWR);
    }
    control_.join();
  }
  device_.reset();
  if (!owns_listen_fd_) (void)listen_fd_.release();
  listen_fd_.reset();
  if (created_socket_file_) {
    ::unlink(options_.socket_path.c_str());
    created_socket_file_ = false;
  }
}

void VhostUserFsBackend::ControlMain() {
  while (!stopping_.load()) {
    struct pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      NLOG_ERROR(kLog, "poll on the listening socket: %s", strerror(errno));
      return;
    }
    if (stopping_.load() || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & (POLLERR | POLLNVAL)) != 0) {
      NLOG_ERROR(kLog, "the listening socket failed; no more frontends can connect");
      return;
    }
    int conn = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        NLOG_ERROR(kLog, "accept: %s", strerror(errno));
        ::usleep(100 * 1000);  // EMFILE and friends: do not spin
      }
      continue;
    }
    BackendCounters::Add(counters_->connections);
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      conn_fd_ = conn;
    }
    connected_.store(true);
    NLOG_INFO(kLog, "frontend connected");
    Serve(conn);
    device_->Disconnect();
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      conn_fd_ = -1;
    }
    ::close(conn);
    connected_.store(false);
    if (!stopping_.load()) NLOG_INFO(kLog, "frontend gone; device state dropped, listening again");
  }
}

void VhostUserFsBackend::Serve(int conn) {
  ServeConnection(device_.get(), conn, stop_fd_.get(), counters_.get());
}

ServeEnd ServeConnection(VhostUserFsDevice* device, int conn, int stop_fd,
                         BackendCounters* counters) {
  auto msg = std::make_unique<Message>();
  std::string error;
  for (;;) {
    struct pollfd fds[2] = {{conn, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, stop_fd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      NLOG_ERROR(kLog, "poll on the frontend connection: %s", strerror(errno));
      return ServeEnd::kError;
    }
    if ((fds[1].revents & POLLIN) != 0) return ServeEnd::kStopped;
    int rc = ReadMessage(conn, msg.get(), &error);
    if (rc == -ECONNRESET) {
      NLOG_INFO(kLog, "frontend closed the connection");
      return ServeEnd::kClosed;
    }
    if (rc == -EPROTO) {
      BackendCounters::Add(counters->protocol_errors);
      NLOG_ERROR(kLog, "vhost-user protocol violation, closing the connection: %s", error.c_str());
      return ServeEnd::kProtocolError;
    }
    if (rc < 0) {
      NLOG_WARN(kLog, "frontend connection: %s", error.c_str());
      return ServeEnd::kError;
    }
    if (!CheckFraming(*msg, &error)) {
      BackendCounters::Add(counters->protocol_errors);
      NLOG_ERROR(kLog, "malformed vhost-user message, closing the connection: %s", error.c_str());
      return ServeEnd::kProtocolError;
    }
    Reply reply;
    bool keep = device->Handle(msg.get(), &reply);
    msg->CloseFds();
    if (reply.send) {
      rc = SendReply(conn, msg->header.request, reply.body, reply.size);
      if (rc != 0) {
        NLOG_WARN(kLog, "sending the %s reply: %s", RequestName(msg->header.request),
                  strerror(-rc));
        return ServeEnd::kError;
      }
    }
    if (!keep) return ServeEnd::kRefused;
  }
}

}  // namespace nydus::vhost
