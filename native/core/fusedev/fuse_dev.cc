#include "fusedev/fuse_dev.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "common/log.h"

namespace nydus::fusedev {

namespace {
constexpr const char* kLog = "fusedev";
constexpr size_t kPage = 4096;
}  // namespace

// One fd a worker reads from and replies to. The lock keeps Stop() from closing (and the kernel
// from reusing) the fd number while a reply is being written.
struct FuseDevTransport::Channel {
  std::shared_mutex mu;
  int fd = -1;  // guarded by mu; -1 after Stop()
  std::atomic<uint64_t> replies{0}, bytes_written{0}, write_errors{0};

  int Dup() {
    std::shared_lock lock(mu);
    return fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  }

  void Write(const uint8_t* buf, uint32_t len) {
    std::shared_lock lock(mu);
    if (fd < 0) return;
    ssize_t n;
    do {
      n = ::write(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      // ENOENT: the request was interrupted or aborted meanwhile; the kernel no longer wants it.
      if (errno != ENOENT) {
        write_errors.fetch_add(1, std::memory_order_relaxed);
        NLOG_WARN(kLog, "writing a %u-byte FUSE reply failed: %s", len, std::strerror(errno));
      }
      return;
    }
    replies.fetch_add(1, std::memory_order_relaxed);
    bytes_written.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
};

namespace {

class DevRequest final : public transport::FuseRequest {
 public:
  DevRequest(FuseDevTransport::Pool* pool, uint8_t* out, size_t out_cap)
      : transport::FuseRequest(transport::TransportKind::kFuseDev), pool_(pool), out_buf_(out) {
    out_slice_ = {out, out_cap};
    out_ = std::span<const transport::IoSlice>(&out_slice_, 1);
    out_bytes_ = out_cap;
  }
  ~DevRequest() override = default;

  void Prepare(uint8_t* in, size_t len, std::shared_ptr<FuseDevTransport::Channel> channel,
               std::shared_ptr<FuseDevTransport::Pool> pool_ref) {
    in_slice_ = {in, len};
    in_ = std::span<const transport::IoSlice>(&in_slice_, 1);
    in_bytes_ = len;
    channel_ = std::move(channel);
    pool_ref_ = std::move(pool_ref);
  }

  void Complete(uint32_t written) override;

  uint8_t* out_buf() const { return out_buf_; }

 private:
  FuseDevTransport::Pool* pool_;
  uint8_t* out_buf_;
  transport::IoSlice in_slice_{};
  transport::IoSlice out_slice_{};
  std::shared_ptr<FuseDevTransport::Channel> channel_;
  std::shared_ptr<FuseDevTransport::Pool> pool_ref_;  // keeps the pool alive until Complete
};

}  // namespace

// Reusable requests with their reply buffers. Outlives the transport while requests are out:
// each outstanding request holds a reference.
struct FuseDevTransport::Pool {
  explicit Pool(size_t cap, size_t idle) : out_cap(cap), max_idle(idle) {}
  ~Pool() {
    for (DevRequest* r : free) Destroy(r);
  }

  DevRequest* Get() {
    {
      std::lock_guard lock(mu);
      if (!free.empty()) {
        DevRequest* r = free.back();
        free.pop_back();
        return r;
      }
    }
    void* mem = mmap(nullptr, out_cap, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    return new DevRequest(this, static_cast<uint8_t*>(mem), out_cap);
  }

  void Put(DevRequest* r) {
    std::unique_lock lock(mu);
    if (free.size() < max_idle) {
      free.push_back(r);
      return;
    }
    lock.unlock();
    Destroy(r);
  }

  void Destroy(DevRequest* r) {
    munmap(r->out_buf(), out_cap);
    delete r;
  }

  const size_t out_cap;
  const size_t max_idle;
  std::mutex mu;
  std::vector<DevRequest*> free;  // guarded by mu
};

void DevRequest::Complete(uint32_t written) {
  if (written > 0) channel_->Write(out_buf_, written);
  channel_.reset();
  // Moving the reference out first: Put() may hand this object to another thread at once.
  std::shared_ptr<FuseDevTransport::Pool> keep = std::move(pool_ref_);
  pool_->Put(this);
}

FuseDevTransport::FuseDevTransport(transport::FuseRequestSink* sink, FuseDevOptions options)
    : sink_(sink), options_(options) {
  if (options_.threads == 0) options_.threads = 1;
  if (options_.max_write < 4096) options_.max_write = 4096;
}

FuseDevTransport::~FuseDevTransport() { Stop(); }

int FuseDevTransport::Start(int fd, std::string* error) {
  const size_t buf = static_cast<size_t>(options_.max_write) + kPage;
  pool_ = std::make_shared<Pool>(buf, static_cast<size_t>(options_.threads) * 4);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    int err = errno;
    ::close(fd);
    *error = std::string("eventfd: ") + std::strerror(err);
    return -err;
  }
  std::vector<int> fds{fd};
  for (uint32_t i = 1; i < options_.threads; ++i) {
    int clone = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    uint32_t src = static_cast<uint32_t>(fd);
    if (clone >= 0 && ioctl(clone, FUSE_DEV_IOC_CLONE, &src) != 0) {
      ::close(clone);
      clone = -1;
    }
    if (clone < 0) clone = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (clone < 0) {
      NLOG_WARN(kLog, "cannot clone the FUSE fd (%s); using %u worker(s)", std::strerror(errno), i);
      break;
    }
    fds.push_back(clone);
  }
  for (int f : fds) {
    fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK);
    auto ch = std::make_shared<Channel>();
    ch->fd = f;
    channels_.push_back(ch);
  }
  for (auto& ch : channels_) workers_.emplace_back([this, ch] { WorkerLoop(ch); });
  NLOG_INFO(kLog, "serving /dev/fuse with %zu worker thread(s)", workers_.size());
  return 0;
}

void FuseDevTransport::WorkerLoop(std::shared_ptr<Channel> channel) {
  // Signals belong to the Node main thread (its handlers run there); a worker must not take
  // SIGTERM/SIGINT away from it.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  const size_t buf_len = static_cast<size_t>(options_.max_write) + kPage;
  void* mem = mmap(nullptr, buf_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    NLOG_ERROR(kLog, "cannot allocate a %zu-byte request buffer", buf_len);
    Closed(ENOMEM);
    return;
  }
  auto* buf = static_cast<uint8_t*>(mem);
  int fd;
  {
    std::shared_lock lock(channel->mu);
    fd = channel->fd;
  }
  // One epoll set per worker. The FUSE fd is registered EPOLLEXCLUSIVE: all clones share the
  // kernel's input wait queue, and an exclusive waiter means one new request wakes one worker
  // instead of all of them (on a 2-core machine the herd costs more than the request).
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev {};
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.u32 = 0;
  bool ok = ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
  ev.events = EPOLLIN;
  ev.data.u32 = 1;
  ok = ok && epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd_, &ev) == 0;
  if (!ok) {
    NLOG_ERROR(kLog, "cannot set up epoll for a /dev/fuse worker: %s", std::strerror(errno));
    if (ep >= 0) ::close(ep);
    munmap(mem, buf_len);
    Closed(errno);
    return;
  }
  for (;;) {
    struct epoll_event events[2];
    int nev = epoll_wait(ep, events, 2, -1);
    if (nev < 0) {
      if (errno == EINTR) continue;
      NLOG_ERROR(kLog, "epoll_wait on /dev/fuse failed: %s", std::strerror(errno));
      Closed(errno);
      break;
    }
    bool stop = stopped_.load(std::memory_order_acquire);
    for (int i = 0; i < nev; ++i) stop = stop || events[i].data.u32 == 1;
    if (stop) break;
    ssize_t n = ::read(fd, buf, buf_len);
    if (n < 0) {
      int err = errno;
      if (err == EAGAIN || err == EINTR || err == ENOENT) continue;
      if (err == ENODEV) {
        Closed(ENODEV);
      } else {
        NLOG_ERROR(kLog, "reading /dev/fuse failed: %s", std::strerror(err));
        Closed(err);
      }
      break;
    }
    if (n == 0) continue;
    requests_.fetch_add(1, std::memory_order_relaxed);
    bytes_read_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    DevRequest* req = pool_->Get();
    if (req == nullptr) {
      NLOG_ERROR(kLog, "out of memory for a FUSE reply buffer; request dropped");
      continue;
    }
    req->Prepare(buf, static_cast<size_t>(n), channel, pool_);
    sink_->OnRequest(req);
  }
  ::close(ep);
  munmap(mem, buf_len);
}

void FuseDevTransport::Closed(int err) {
  if (stopped_.load(std::memory_order_acquire)) return;
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  NLOG_INFO(kLog, "FUSE session ended: %s", err == ENODEV ? "unmounted" : std::strerror(err));
  // Wake the other workers: the connection is gone for them too.
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  if (on_closed_) on_closed_(err);
}

int FuseDevTransport::DupFd() const { return channels_.empty() ? -1 : channels_.front()->Dup(); }

void FuseDevTransport::Stop() {
  if (stopped_.exchange(true, std::memory_order_acq_rel)) return;
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
  }
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  for (auto& ch : channels_) {
    std::unique_lock lock(ch->mu);
    if (ch->fd >= 0) ::close(ch->fd);
    ch->fd = -1;
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
  stop_fd_ = -1;
}

FuseDevStats FuseDevTransport::GetStats() const {
  FuseDevStats s;
  s.requests = requests_.load(std::memory_order_relaxed);
  s.bytes_read = bytes_read_.load(std::memory_order_relaxed);
  for (const auto& ch : channels_) {
    s.replies += ch->replies.load(std::memory_order_relaxed);
    s.bytes_written += ch->bytes_written.load(std::memory_order_relaxed);
    s.write_errors += ch->write_errors.load(std::memory_order_relaxed);
  }
  s.threads = channels_.size();
  s.closed = closed_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace nydus::fusedev
