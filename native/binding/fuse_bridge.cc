#include "fuse_bridge.h"

#include "common/log.h"

namespace nydus::binding {
namespace {
constexpr const char* kLog = "fuse-binding";
}

FuseBridge* FuseBridge::Create(Napi::Env env, Napi::Function dispatch, Napi::Float64Array records,
                               Napi::Uint8Array bytes) {
  auto* b = new FuseBridge();
  b->records_ref_ = Napi::Persistent(records);
  b->bytes_ref_ = Napi::Persistent(bytes);
  b->arena_.records = records.Data();
  b->arena_.max_records = records.ElementLength() / abi::UpcallRecord::kStride;
  b->arena_.bytes = bytes.Data();
  b->arena_.bytes_cap = bytes.ByteLength();
  b->tsfn_ = FuseTsfn::New(
      env, dispatch, "nydus-fuse-session", 0, 1, b,
      [](Napi::Env, void*, FuseBridge* bridge) {
        // Last queued call done: the bridge (and its references) can go, on the JS thread.
        delete bridge;
      },
      static_cast<void*>(nullptr));
  b->active_ = true;
  return b;
}

void FuseBridge::Wake() {
  std::lock_guard lock(mu_);
  if (!active_) return;
  napi_status st = tsfn_.NonBlockingCall();
  switch (st) {
    case napi_ok:
      return;
    case napi_closing:
      // The environment is shutting down: nobody will read upcalls any more. The session is
      // stopped by the env cleanup hook; requests are completed there.
      active_ = false;
      return;
    case napi_queue_full:
      // The queue is unbounded (max 0), so this cannot happen; if it does, a wake is already
      // queued and the drain loop in CallJs picks this batch up too.
      NLOG_ERROR(kLog, "FUSE upcall queue reported full");
      return;
    default:
      NLOG_ERROR(kLog, "scheduling FUSE upcalls failed (napi_status %d)", static_cast<int>(st));
      return;
  }
}

void FuseBridge::PushLoopback(uint32_t id, std::vector<uint8_t> reply) {
  {
    std::lock_guard lock(mu_);
    if (!active_) return;
    loopback_.push_back({id, std::move(reply)});
  }
  Wake();
}

void FuseBridge::Release() {
  std::lock_guard lock(mu_);
  if (!active_) return;
  active_ = false;
  tsfn_.Release();
}

void FuseBridgeCallJs(Napi::Env env, Napi::Function fn, FuseBridge* bridge, void*) {
  // A null env means the TSFN is being torn down with calls still queued: nothing to call.
  if (env == nullptr || fn == nullptr || bridge == nullptr) return;
  bridge->Deliver(env, fn);
}

void FuseBridge::Deliver(Napi::Env env, Napi::Function fn) {
  // Promise reactions of async handlers run only after this call returns; under a steady
  // stream of requests, deliver a bounded number of batches and queue another call for the rest
  // so answers (and everything else on the event loop) keep flowing.
  constexpr int kMaxBatchesPerCall = 8;
  int batches = 0;
  for (;;) {
    Napi::HandleScope scope(env);
    std::deque<Loopback> done;
    {
      std::lock_guard lock(mu_);
      done.swap(loopback_);
    }
    for (auto& l : done) {
      auto buf = Napi::Buffer<uint8_t>::Copy(env, l.reply.data(), l.reply.size());
      try {
        fn.Call({Napi::Number::New(env, kDispatchLoopback), Napi::Number::New(env, l.id), buf});
      } catch (const Napi::Error& e) {
        NLOG_ERROR(kLog, "FUSE dispatcher threw on a loopback reply: %s", e.Message().c_str());
      }
    }
    if (session_ == nullptr) return;
    const size_t n = session_->DrainUpcalls(&arena_);
    if (n == 0) {
      std::lock_guard lock(mu_);
      if (loopback_.empty()) return;
      continue;
    }
    try {
      fn.Call(
          {Napi::Number::New(env, kDispatchBatch), Napi::Number::New(env, static_cast<double>(n))});
    } catch (const Napi::Error& e) {
      // The TypeScript dispatcher catches handler failures per request; reaching here is a bug
      // in the dispatcher itself. The batch's requests stay pending until stop.
      NLOG_ERROR(kLog, "FUSE dispatcher threw: %s", e.Message().c_str());
    }
    if (++batches >= kMaxBatchesPerCall) {
      // The session still believes a wake is pending (its queue may not be empty), so this
      // call must schedule the next one itself.
      Wake();
      return;
    }
  }
}

}  // namespace nydus::binding
