// The thread-safe link between a FuseSession (whose requests arrive on transport threads) and
// its JavaScript dispatcher. Style rule 6: one TypedThreadSafeFunction per session, long-lived
// native threads, never AsyncWorker on the data plane.
//
// Wake() may be called on any thread; it schedules one call of CallJs on the JS thread, which
// drains the session's upcalls into the shared arena (one arena per batch, reused: the JS side
// reads each batch synchronously) and calls the dispatcher once per batch. Loopback completions
// (requests injected by tests through the in-memory transport) travel the same way.
//
// Lifetime: the bridge is owned by its TSFN and deleted in the TSFN finalizer, after the last
// queued call ran, so CallJs never sees a dangling context. It holds the session (shared_ptr)
// and the arena arrays (references), released on the JS thread in that finalizer.
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

namespace nydus::binding {

// Dispatcher call kinds (first argument; abi/js_abi.h).
inline constexpr int kDispatchBatch = abi::kDispatchBatch;        // (kind, count)
inline constexpr int kDispatchLoopback = abi::kDispatchLoopback;  // (kind, id, Buffer reply)

class FuseBridge;
void FuseBridgeCallJs(Napi::Env env, Napi::Function fn, FuseBridge* bridge, void* data);
using FuseTsfn = Napi::TypedThreadSafeFunction<FuseBridge, void, FuseBridgeCallJs>;

class FuseBridge final : public fuse::UpcallListener {
 public:
  // Creates the bridge and its TSFN (referenced: a live session keeps the process alive).
  static FuseBridge* Create(Napi::Env env, Napi::Function dispatch, Napi::Float64Array records,
                            Napi::Uint8Array bytes);

  void set_session(std::shared_ptr<fuse::FuseSession> s) { session_ = std::move(s); }

  void OnUpcallsPending() override { Wake(); }
  void Wake();
  void PushLoopback(uint32_t id, std::vector<uint8_t> reply);
  // Releases the TSFN: no further wakes are delivered. JS thread; idempotent.
  void Release();

 private:
  friend void FuseBridgeCallJs(Napi::Env, Napi::Function, FuseBridge*, void*);
  FuseBridge() = default;
  void Deliver(Napi::Env env, Napi::Function fn);

  struct Loopback {
    uint32_t id;
    std::vector<uint8_t> reply;
  };

  std::mutex mu_;
  FuseTsfn tsfn_;                  // guarded by mu_ for calls and release
  bool active_ = false;            // guarded by mu_: false once released or closing
  std::deque<Loopback> loopback_;  // guarded by mu_

  // JS thread only.
  std::shared_ptr<fuse::FuseSession> session_;
  Napi::Reference<Napi::Float64Array> records_ref_;
  Napi::Reference<Napi::Uint8Array> bytes_ref_;
  fuse::UpcallArena arena_;
};

}  // namespace nydus::binding
