// Helpers for the vhost-user and virtqueue tests: test-only FUSE sinks (no FUSE session, just
// enough to answer a chain the way a session would) and small memfd/eventfd utilities.
#pragma once

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "transport/request.h"

namespace nydus::vhost::testing {

// "FUSE" as far as these tests need it: in header {u32 len; u32 opcode; u64 unique; ...} (40
// bytes), out header {u32 len; i32 error; u64 unique} (16 bytes).
struct TestInHeader {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen, padding;
};
static_assert(sizeof(TestInHeader) == 40);
struct TestOutHeader {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
static_assert(sizeof(TestOutHeader) == 16);

inline size_t Gather(const transport::FuseRequest& r, uint8_t* dst, size_t max) {
  size_t n = 0;
  for (const auto& s : r.in()) {
    size_t take = std::min(s.len, max - n);
    memcpy(dst + n, s.base, take);
    n += take;
    if (n == max) break;
  }
  return n;
}

inline size_t Scatter(const transport::FuseRequest& r, const uint8_t* src, size_t len) {
  size_t n = 0;
  for (const auto& s : r.out()) {
    size_t take = std::min(s.len, len - n);
    memcpy(s.base, src + n, take);
    n += take;
    if (n == len) break;
  }
  return n;
}

// Answers a request: no writable space -> complete with 0 (FORGET); otherwise an out header
// echoing `unique` followed by the readable bytes after the in header (as much as fits).
inline uint32_t EchoReply(transport::FuseRequest* r) {
  if (r->out_bytes() == 0) return 0;
  std::vector<uint8_t> in(r->in_bytes());
  Gather(*r, in.data(), in.size());
  TestInHeader ih{};
  memcpy(&ih, in.data(), std::min(in.size(), sizeof(ih)));
  size_t payload = in.size() > sizeof(ih) ? in.size() - sizeof(ih) : 0;
  payload = std::min(payload, r->out_bytes() - sizeof(TestOutHeader));
  std::vector<uint8_t> out(sizeof(TestOutHeader) + payload);
  TestOutHeader oh{static_cast<uint32_t>(out.size()), 0, ih.unique};
  memcpy(out.data(), &oh, sizeof(oh));
  if (payload > 0) memcpy(out.data() + sizeof(oh), in.data() + sizeof(ih), payload);
  return static_cast<uint32_t>(Scatter(*r, out.data(), out.size()));
}

// Completes every request inline, on the queue thread.
class EchoSink : public transport::FuseRequestSink {
 public:
  void OnRequest(transport::FuseRequest* r) override {
    requests.fetch_add(1);
    r->Complete(EchoReply(r));
  }
  void OnSessionReset() override { resets.fetch_add(1); }
  std::atomic<int> requests{0};
  std::atomic<int> resets{0};
};

// Parks requests; a helper thread completes them (auto mode) or the test does (Release()).
class AsyncSink : public transport::FuseRequestSink {
 public:
  explicit AsyncSink(bool auto_complete) : auto_(auto_complete) {
    if (auto_) thread_ = std::thread([this] { Run(); });
  }
  ~AsyncSink() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    ReleaseAll();
  }
  void OnRequest(transport::FuseRequest* r) override {
    requests.fetch_add(1);
    {
      std::lock_guard<std::mutex> l(mu_);
      parked_.push_back(r);
    }
    cv_.notify_all();
  }
  void OnSessionReset() override { resets.fetch_add(1); }
  size_t parked() {
    std::lock_guard<std::mutex> l(mu_);
    return parked_.size();
  }
  // Completes everything parked (from the calling thread).
  void ReleaseAll() {
    std::deque<transport::FuseRequest*> q;
    {
      std::lock_guard<std::mutex> l(mu_);
      q.swap(parked_);
    }
    for (auto* r : q) r->Complete(EchoReply(r));
  }
  std::atomic<int> requests{0};
  std::atomic<int> resets{0};

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait(l, [this] { return stop_ || !parked_.empty(); });
      while (!parked_.empty()) {
        auto* r = parked_.front();
        parked_.pop_front();
        l.unlock();
        r->Complete(EchoReply(r));
        l.lock();
      }
    }
  }
  const bool auto_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<transport::FuseRequest*> parked_;
  bool stop_ = false;
  std::thread thread_;
};

inline UniqueFd MakeEventFd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

inline UniqueFd MakeMemfd(size_t size) {
  UniqueFd fd(::memfd_create("vhost-test", MFD_CLOEXEC));
  if (fd.valid() && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) fd.reset();
  return fd;
}

}  // namespace nydus::vhost::testing
