// The link between a FuseSession (whose requests arrive on transport threads) and its
// JavaScript dispatcher. Style rule 6 in spirit: one long-lived wake-up per session
// (loop_wake.h, our own uv_async_t: a thread-safe function's producer wakes the loop while
// holding the lock the woken loop then needs), long-lived native threads, never AsyncWorker.
//
// Wake() may be called on any thread; it schedules one Deliver on the JS thread, which drains the
// session's upcalls into the shared arena (one arena per batch, reused: the JS side reads each
// batch synchronously) and calls the dispatcher once per batch. Loopback completions (requests
// injected by tests through the in-memory transport) travel the same way.
//
// Lifetime: the bridge is owned by its wake and deleted, on the JS thread, when the wake closes:
// after Release() and one last delivery, or at environment teardown (no JavaScript then). It
// holds the session (shared_ptr), the dispatcher and the arena arrays (references).
#pragma once

#include <napi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "abi/js_abi.h"
#include "fuse/session.h"
#include "fuse/upcall.h"
#include "loop_wake.h"

namespace nydus::binding {

// Dispatcher call kinds (first argument; abi/js_abi.h).
inline constexpr int kDispatchBatch = abi::kDispatchBatch;        // (kind, count)
inline constexpr int kDispatchLoopback = abi::kDispatchLoopback;  // (kind, id, Buffer reply)

class FuseBridge final : public fuse::UpcallListener {
 public:
  // Creates the bridge and its wake (referenced: a live session keeps the process alive).
  static FuseBridge* Create(Napi::Env env, Napi::Function dispatch, Napi::Float64Array records,
                            Napi::Uint8Array bytes);

  void set_session(std::shared_ptr<fuse::FuseSession> s) { session_ = std::move(s); }

  void OnUpcallsPending() override { Wake(); }
  void Wake();
  void PushLoopback(uint32_t id, std::vector<uint8_t> reply);
  // Stops further wakes: what is queued is delivered once more, then the bridge goes. JS thread;
  // idempotent.
  void Release();

 private:
  FuseBridge() = default;
  void OnWake(Napi::Env env);
  void Deliver(Napi::Env env, Napi::Function fn);

  struct Loopback {
    uint32_t id;
    std::vector<uint8_t> reply;
  };

  std::mutex mu_;
  std::shared_ptr<LoopWake> wake_;  // set at creation; Wake() sends through a copy
  bool active_ = false;             // guarded by mu_: false once released
  std::deque<Loopback> loopback_;   // guarded by mu_

  // JS thread only.
  bool tearing_down_ = false;  // the environment is going: no JavaScript
  Napi::FunctionReference dispatch_;
  std::shared_ptr<fuse::FuseSession> session_;
  Napi::Reference<Napi::Float64Array> records_ref_;
  Napi::Reference<Napi::Uint8Array> bytes_ref_;
  fuse::UpcallArena arena_;
};

}  // namespace nydus::binding
