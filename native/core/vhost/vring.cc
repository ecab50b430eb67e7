#include "vhost/vring.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include <algorithm>
#include <cinttypes>

#include "common/log.h"
#include "transport/slices.h"

namespace nydus::vhost {
namespace {

constexpr const char* kLog = "vhost";
// Without a kick fd (SET_VRING_KICK with NOFD) the ring is polled at this interval.
constexpr int kPollModeIntervalMs = 1;
// Size of fuse_out_header {u32 len; i32 error; u64 unique} and the offset of `unique` in
// fuse_in_header; the only FUSE layout the transport knows, for answering a malformed chain with
// EIO (reference §2.4 "Reply bounds").
constexpr size_t kOutHeaderSize = 16;
constexpr size_t kInHeaderUniqueOffset = 8;

// The ring whose worker is draining on this thread: completions it makes inline are published
// once at the end of the drain instead of one by one.
thread_local const Vring* tls_draining = nullptr;

}  // namespace

VirtioFuseRequest::VirtioFuseRequest(Vring* owner)
    : transport::FuseRequest(transport::TransportKind::kVirtio), owner_(owner) {
  in_store_.reserve(4);
  out_store_.reserve(4);
}

void VirtioFuseRequest::Fill(const ChainScratch& s) {
  // assign() reuses the vectors' capacity: after a slot has seen its largest chain, no more
  // allocation happens for it (style rule 11).
  in_store_.assign(s.in.begin(), s.in.begin() + static_cast<ptrdiff_t>(s.num_in));
  out_store_.assign(s.out.begin(), s.out.begin() + static_cast<ptrdiff_t>(s.num_out));
  in_ = in_store_;
  out_ = out_store_;
  in_bytes_ = s.in_bytes;
  out_bytes_ = s.out_bytes;
}

void VirtioFuseRequest::Complete(uint32_t written) { owner_->Complete(this, written); }

Vring::Vring(VringOptions options)
    : options_(std::move(options)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      scratch_(SliceCapacityFor(options_.max_queue_size)) {
  slots_.reserve(options_.max_queue_size);
  free_.reserve(options_.max_queue_size);
  for (uint32_t i = 0; i < options_.max_queue_size; ++i) {
    slots_.push_back(std::make_unique<VirtioFuseRequest>(this));
    free_.push_back(slots_.back().get());
  }
}

Vring::~Vring() {
  if (worker_.joinable()) {
    stop_.store(true);
    Wake();
    worker_.join();
  }
}

size_t Vring::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

void Vring::Wake() {
  uint64_t one = 1;
  // A full eventfd counter is impossible in practice and would still leave it readable.
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

void Vring::SetCallFd(UniqueFd fd) {
  UniqueFd old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::exchange(call_fd_, std::move(fd));
    // libvhost-user signals a freshly installed call fd "in case of hang": completions made
    // while QEMU's masked notifier was installed must not be lost. Spurious interrupts are
    // harmless to a virtio driver.
    if (running_) SignalCallLocked();
  }
  // `old` closes here, outside the lock: nobody can be writing to it any more.
}

void Vring::SetErrFd(UniqueFd fd) {
  std::lock_guard<std::mutex> lock(mu_);
  err_fd_ = std::move(fd);
}

void Vring::SetEnabled(bool enabled) {
  enabled_.store(enabled);
  // A kick may have arrived while disabled (reference §1.4): rescan once.
  if (enabled) Wake();
}

void Vring::SignalCallLocked() {
  if (!call_fd_.valid()) return;
  uint64_t one = 1;
  if (::write(call_fd_.get(), &one, sizeof(one)) == sizeof(one)) {
    BackendCounters::Add(options_.counters->notifications);
  }
}

int Vring::Start(std::shared_ptr<const GuestMemory> memory, bool event_idx, std::string* error) {
  char buf[256];
  const Config& c = config_;
  if (c.num == 0 || !c.addr_set) {
    std::snprintf(buf, sizeof(buf), "queue %u started before its size and addresses were set",
                  index());
    *error = buf;
    return -EINVAL;
  }
  SplitRing::Layout layout;
  layout.desc = memory->UvaToHost(c.desc_uva, DescTableBytes(c.num));
  layout.avail = memory->UvaToHost(c.avail_uva, AvailRingBytes(c.num));
  layout.used = memory->UvaToHost(c.used_uva, UsedRingBytes(c.num));
  if (layout.desc == nullptr || layout.avail == nullptr || layout.used == nullptr) {
    std::snprintf(buf, sizeof(buf),
                  "queue %u: ring addresses desc=0x%" PRIx64 " avail=0x%" PRIx64 " used=0x%" PRIx64
                  " (size %u) are not inside the shared memory regions",
                  index(), c.desc_uva, c.avail_uva, c.used_uva, c.num);
    *error = buf;
    return -EFAULT;
  }
  auto misaligned = [](const uint8_t* p, uintptr_t a) {
    return (reinterpret_cast<uintptr_t>(p) & (a - 1)) != 0;
  };
  if (misaligned(layout.desc, kDescAlign) || misaligned(layout.avail, kAvailAlign) ||
      misaligned(layout.used, kUsedAlign)) {
    std::snprintf(buf, sizeof(buf), "queue %u: ring addresses are misaligned (VIRTIO 1.2 §2.7)",
                  index());
    *error = buf;
    return -EINVAL;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ring_.Attach(layout, static_cast<uint16_t>(c.num), c.base, event_idx);
    ++generation_;
    head_in_flight_.assign(c.num, 0);
    starved_ = false;
    running_ = true;
  }
  ring_memory_ = std::move(memory);
  broken_.store(false);
  stop_.store(false);
  if (!kick_fd_.valid()) {
    NLOG_INFO(kLog, "queue %u has no kick eventfd: polling it every %d ms", index(),
              kPollModeIntervalMs);
  }
  if (options_.spawn_worker) worker_ = std::thread(&Vring::WorkerMain, this);
  return 0;
}

uint16_t Vring::Stop(std::chrono::milliseconds drain) {
  if (worker_.joinable()) {
    stop_.store(true);
    Wake();
    worker_.join();
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!running_) return config_.base;
  if (drain.count() > 0 && in_flight_ > 0) {
    idle_cv_.wait_for(lock, drain, [this] { return in_flight_ == 0; });
  }
  if (in_flight_ > 0) {
    NLOG_WARN(kLog,
              "queue %u stopped with %zu requests still in flight; their replies will be dropped",
              index(), in_flight_);
  }
  uint16_t next = ring_.last_avail();
  ring_.Detach();
  ++generation_;
  running_ = false;
  config_.base = next;
  lock.unlock();
  ring_memory_.reset();
  kick_fd_.reset();
  return next;
}

void Vring::Reset() {
  Stop(std::chrono::milliseconds(0));
  config_ = Config{};
  enabled_.store(false);
  broken_.store(false);
  kick_fd_.reset();
  UniqueFd call;
  UniqueFd err;
  {
    std::lock_guard<std::mutex> lock(mu_);
    call = std::move(call_fd_);
    err = std::move(err_fd_);
  }
}

void Vring::WorkerMain() {
  struct pollfd fds[2];
  fds[0] = {kick_fd_.get(), POLLIN, 0};
  fds[1] = {wake_fd_.get(), POLLIN, 0};
  const int timeout = kick_fd_.valid() ? -1 : kPollModeIntervalMs;
  Drain();  // entries made available before the kick fd was installed
  while (!stop_.load()) {
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      NLOG_ERROR(kLog, "queue %u: poll: %s", index(), strerror(errno));
      return;
    }
    uint64_t v;
    if ((fds[1].revents & POLLIN) != 0) (void)!::read(wake_fd_.get(), &v, sizeof(v));
    if (stop_.load()) break;
    if ((fds[0].revents & POLLIN) != 0) (void)!::read(kick_fd_.get(), &v, sizeof(v));
    if ((fds[0].revents & (POLLERR | POLLNVAL)) != 0) {
      NLOG_ERROR(kLog, "queue %u: kick fd failed; the ring is polled from now on", index());
      fds[0].fd = -1;
    }
    Drain();
    SpinForMore();
  }
}

void Vring::SpinForMore() {
  const uint32_t spin_us = options_.busy_poll_us;
  if (spin_us == 0 || last_drain_chains_ < options_.busy_poll_min_chains) return;
  struct timespec last_work;
  clock_gettime(CLOCK_MONOTONIC, &last_work);
  // Bounded by spin_us after the last chain found; stops at once for a stop or a broken ring.
  while (!stop_.load(std::memory_order_relaxed) && !broken_.load(std::memory_order_relaxed)) {
    uint16_t pending = 0;
    if (running_ && ring_.Pending(&pending) && pending > 0) {
      Drain();
      if (last_drain_chains_ < options_.busy_poll_min_chains) return;
      clock_gettime(CLOCK_MONOTONIC, &last_work);
      continue;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    const int64_t us =
        (now.tv_sec - last_work.tv_sec) * 1000000 + (now.tv_nsec - last_work.tv_nsec) / 1000;
    if (us >= spin_us) return;
  }
}

void Vring::Drain() {
  if (!running_ || broken_.load() || !enabled_.load()) return;
  // One memory snapshot per drain; every request keeps its own reference.
  std::shared_ptr<const GuestMemory> memory = options_.memory->Current();
  tls_draining = this;
  last_drain_chains_ = 0;
  for (uint32_t round = 0;; ++round) {
    if (round == options_.max_rounds_per_drain) {
      Wake();  // more may be pending: come back after a pass through the poll loop
      break;
    }
    ring_.SuppressKicks();
    bool left = false;
    bool more = PopAvailable(memory, &left);
    {
      std::lock_guard<std::mutex> lock(mu_);
      // One used.idx store (and at most one notification) for the chains of this round.
      if (ring_.Publish() && ring_.NeedsNotify()) SignalCallLocked();
    }
    if (!more) break;
    if (left) continue;  // chains seen but not taken yet: no need to ask for kicks
    ring_.AllowKicks();
    uint16_t pending = 0;
    if (!ring_.Pending(&pending)) {
      MarkBroken("the available index moved more than the queue size");
      break;
    }
    if (pending == 0) break;
  }
  if (!broken_.load()) ring_.AllowKicks();
  tls_draining = nullptr;
}

bool Vring::PopAvailable(const std::shared_ptr<const GuestMemory>& memory, bool* left) {
  uint16_t pending = 0;
  if (!ring_.Pending(&pending)) {
    MarkBroken("the available index moved more than the queue size");
    return false;
  }
  // At most `pending` (<= queue size) iterations; the rest are taken in the next round.
  const uint32_t take =
      std::min<uint32_t>(pending, std::max<uint32_t>(1, options_.max_chains_per_round));
  *left = take < pending;
  for (uint32_t i = 0; i < take; ++i) {
    if (stop_.load(std::memory_order_relaxed) || !enabled_.load(std::memory_order_relaxed)) {
      return false;
    }
    const uint16_t head = ring_.NextHead();
    if (head >= ring_.size()) {
      MarkBroken("a head index in the available ring is out of range");
      return false;
    }
    bool duplicate = false;
    VirtioFuseRequest* req = BeginRequest(head, &duplicate);
    if (duplicate) {
      MarkBroken("the driver made a chain available again while it was in flight");
      return false;
    }
    if (req == nullptr) return false;  // pool empty: a completion wakes us
    ring_.ConsumeOne();
    ++last_drain_chains_;
    ChainError err = WalkChain(*memory, ring_.desc_table(), ring_.size(), head, &scratch_);
    req->Fill(scratch_);
    req->memory_ = memory;
    if (err != ChainError::kNone) {
      FailChain(req, err);
      continue;
    }
    BackendCounters::Add(options_.counters->requests);
    BackendCounters::Add(options_.counters->bytes_in, scratch_.in_bytes);
    options_.sink->OnRequest(req);
  }
  return true;
}

VirtioFuseRequest* Vring::BeginRequest(uint16_t head, bool* duplicate) {
  std::lock_guard<std::mutex> lock(mu_);
  if (head_in_flight_[head] != 0) {
    *duplicate = true;
    return nullptr;
  }
  if (free_.empty()) {
    starved_ = true;
    return nullptr;
  }
  VirtioFuseRequest* req = free_.back();
  free_.pop_back();
  head_in_flight_[head] = 1;
  ++in_flight_;
  req->head_ = head;
  req->generation_ = generation_;
  req->keepalive_ = shared_from_this();
  return req;
}

void Vring::FailChain(VirtioFuseRequest* req, ChainError error) {
  BackendCounters::Add(options_.counters->bad_chains);
  uint64_t n = options_.counters->bad_chains.load(std::memory_order_relaxed);
  // Rate-limited (style rule 9): the guest is at fault; the first few, then one a second.
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const int64_t now = ts.tv_sec;
  if (n <= 8 || last_bad_chain_log_s_.exchange(now, std::memory_order_relaxed) != now) {
    NLOG_WARN(kLog, "queue %u: malformed descriptor chain at head %u: %s (%" PRIu64 " so far)",
              index(), req->head_, ChainErrorName(error), n);
  }
  // Answer with EIO when the request's unique and room for an out header are reachable, so the
  // guest's waiter wakes with an error; otherwise complete with nothing written.
  uint32_t written = 0;
  if (req->in_bytes_ >= kInHeaderUniqueOffset + 8 && req->out_bytes_ >= kOutHeaderSize) {
    struct {
      uint32_t len;
      int32_t error;
      uint64_t unique;
    } hdr{kOutHeaderSize, -EIO, 0};
    static_assert(sizeof(hdr) == kOutHeaderSize);
    // SAFETY: the slices were produced by GuestMemory::TranslateGpa and lie in mapped memory;
    // the size checks above keep both copies inside them.
    transport::CopyOut(req->in(), kInHeaderUniqueOffset, &hdr.unique, sizeof(hdr.unique));
    transport::CopyIn(req->out(), 0, &hdr, sizeof(hdr));
    written = kOutHeaderSize;
  }
  req->Complete(written);
}

void Vring::MarkBroken(const char* reason) {
  if (broken_.exchange(true)) return;
  BackendCounters::Add(options_.counters->broken_queues);
  NLOG_ERROR(kLog,
             "queue %u is broken: %s; it is no longer processed until the frontend restarts it",
             index(), reason);
  std::lock_guard<std::mutex> lock(mu_);
  if (err_fd_.valid()) {
    uint64_t one = 1;
    (void)!::write(err_fd_.get(), &one, sizeof(one));
  }
}

void Vring::Complete(VirtioFuseRequest* req, uint32_t written) {
  // Destroyed after the lock is released, in this order: the mapping snapshot, then possibly
  // this Vring itself (when the device is gone and this was the last request).
  std::shared_ptr<Vring> keep;
  std::shared_ptr<const GuestMemory> memory;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keep = std::move(req->keepalive_);
    memory = std::move(req->memory_);
    if (req->generation_ == generation_ && running_) {
      if (written > req->out_bytes_) {
        NLOG_ERROR(kLog, "queue %u: request completed with %u bytes but has only %zu writable",
                   index(), written, req->out_bytes_);
        written = static_cast<uint32_t>(req->out_bytes_);
      }
      ring_.AddUsed(req->head_, written);
      head_in_flight_[req->head_] = 0;
      BackendCounters::Add(options_.counters->bytes_out, written);
      if (tls_draining != this && ring_.Publish() && ring_.NeedsNotify()) SignalCallLocked();
    } else {
      BackendCounters::Add(options_.counters->stale_completions);
    }
    free_.push_back(req);
    if (--in_flight_ == 0) idle_cv_.notify_all();
    if (starved_) {
      starved_ = false;
      Wake();
    }
  }
}

}  // namespace nydus::vhost
