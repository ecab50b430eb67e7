// A running VhostUserFsBackend on a temporary socket plus a frontend session that plays QEMU or
// cloud-hypervisor and the guest driver, for the backend tests.
#pragma once

#include <poll.h>
#include <time.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/log.h"
#include "driver/frontend/fs_session.h"
#include "testing.h"
#include "vhost/backend.h"
#include "vhost_test_util.h"

namespace nydus::vhost::testing {

// The test-only vhost-user frontend (native/driver/frontend) plays QEMU.
namespace frontend = ::nydus::driver::frontend;

inline int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// Polls `cond` for up to `ms` milliseconds (for state that changes on another thread).
template <typename F>
bool WaitFor(F cond, int ms = 5000) {
  int64_t end = NowMs() + ms;
  while (NowMs() < end) {
    if (cond()) return true;
    ::usleep(1000);
  }
  return cond();
}

// Captures log records while alive (the tests check the operator-facing messages).
class LogCapture {
 public:
  LogCapture() {
    std::lock_guard<std::mutex> l(Mu());
    Lines().clear();
    SetLogSink(&LogCapture::Sink);
  }
  ~LogCapture() { SetLogSink(nullptr); }
  bool Contains(const std::string& needle) {
    std::lock_guard<std::mutex> l(Mu());
    for (const auto& s : Lines()) {
      if (s.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  static std::mutex& Mu() {
    static std::mutex m;
    return m;
  }
  static std::vector<std::string>& Lines() {
    static std::vector<std::string> v;
    return v;
  }
  static void Sink(LogLevel, const char*, const char* message) {
    std::lock_guard<std::mutex> l(Mu());
    Lines().push_back(message);
  }
};

// Small guest RAM and queues: the tests need correctness, not capacity.
inline frontend::SessionOptions SmallSession(frontend::Flavor flavor = frontend::Flavor::kQemu72) {
  frontend::SessionOptions so;
  so.flavor = flavor;
  so.ram_size = uint64_t{32} << 20;
  so.queue_size = 64;
  so.timeout_ms = 5000;
  return so;
}

struct Harness {
  explicit Harness(transport::FuseRequestSink* s, BackendOptions o = {}) : sink(s) {
    o.socket_path = dir.File("vu.sock");
    options = o;
    backend = std::make_unique<VhostUserFsBackend>(o, sink);
    std::string err;
    started = backend->Start(&err) == 0;
  }
  // Connects a new frontend session and runs realize (+ start unless told otherwise).
  std::unique_ptr<frontend::FsFrontendSession> Connect(frontend::SessionOptions so = SmallSession(),
                                                       bool start = true) {
    auto s = std::make_unique<frontend::FsFrontendSession>(so);
    std::string err;
    if (s->Connect(options.socket_path, &err) != 0) return nullptr;
    if (s->Realize(&err) != 0) return nullptr;
    if (start && s->Start(&err) != 0) return nullptr;
    return s;
  }

  nydus::testing::TempDir dir;
  transport::FuseRequestSink* sink;
  BackendOptions options;
  std::unique_ptr<VhostUserFsBackend> backend;
  bool started = false;
};

// One echo request on `queue`: a 40-byte in header with `unique`, then `payload` (readable),
// then a 16-byte out header and `out_space` bytes (writable). Returns the head or < 0.
struct Submitted {
  int head;
  uint64_t out_gpa;
};
inline Submitted SubmitEcho(frontend::FsFrontendSession& s, uint32_t queue, uint64_t unique,
                            const std::string& payload, uint32_t out_space, bool kick = true) {
  auto& ram = s.ram();
  uint64_t in = ram.Alloc(40 + payload.size() + 1, 8);
  uint64_t out = ram.Alloc(16 + out_space, 8);
  TestInHeader ih{static_cast<uint32_t>(40 + payload.size()), 9999, unique, 1, 0, 0, 0, 0, 0};
  memcpy(ram.Host(in, 40), &ih, 40);
  if (!payload.empty()) memcpy(ram.Host(in + 40, payload.size()), payload.data(), payload.size());
  std::vector<frontend::DriverQueue::Buffer> b;
  b.push_back({in, 40, false});
  if (!payload.empty()) b.push_back({in + 40, static_cast<uint32_t>(payload.size()), false});
  b.push_back({out, 16, true});
  if (out_space > 0) b.push_back({out + 16, out_space, true});
  int head = s.queue(queue).Add(b.data(), b.size(), true);
  if (kick) s.Kick(queue);
  return {head, out};
}

inline TestOutHeader ReadOut(frontend::FsFrontendSession& s, uint64_t out_gpa) {
  TestOutHeader oh;
  memcpy(&oh, s.ram().Host(out_gpa, 16), 16);
  return oh;
}

// Waits until `n` used entries arrived on `queue`.
inline std::vector<VirtqUsedElem> WaitUsed(frontend::FsFrontendSession& s, uint32_t queue, size_t n,
                                           int ms = 5000) {
  std::vector<VirtqUsedElem> got;
  int64_t end = NowMs() + ms;
  while (got.size() < n && NowMs() < end) {
    if (s.Wait(queue, &got, static_cast<int>(end - NowMs())) != 0) break;
  }
  return got;
}

}  // namespace nydus::vhost::testing
