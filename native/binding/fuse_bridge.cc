#include "fuse_bridge.h"

#include <string>

#include "common/log.h"

namespace nydus::binding {
namespace {
constexpr const char* kLog = "fuse-binding";

// The message of a thrown error for the log, without calling toString (the environment may be
// terminating).
std::string Describe(Napi::Env env, napi_value error) {
  if (error == nullptr) return "(the environment is terminating)";
  napi_valuetype type = napi_undefined;
  bool has = false;
  napi_value message = nullptr;
  char buf[512];
  size_t len = 0;
  if (napi_typeof(env, error, &type) == napi_ok && type == napi_object &&
      napi_has_named_property(env, error, "message", &has) == napi_ok && has &&
      napi_get_named_property(env, error, "message", &message) == napi_ok &&
      napi_get_value_string_utf8(env, message, buf, sizeof(buf), &len) == napi_ok) {
    return std::string(buf, len);
  }
  return "(a thrown value that is not an Error)";
}
}  // namespace

FuseBridge* FuseBridge::Create(Napi::Env env, Napi::Function dispatch, Napi::Float64Array records,
                               Napi::Uint8Array bytes) {
  std::shared_ptr<FuseBridge> b(new FuseBridge());
  b->dispatch_ = Napi::Persistent(dispatch);
  b->records_ref_ = Napi::Persistent(records);
  b->bytes_ref_ = Napi::Persistent(bytes);
  b->arena_.records = records.Data();
  b->arena_.max_records = records.ElementLength() / abi::UpcallRecord::kStride;
  b->arena_.bytes = bytes.Data();
  b->arena_.bytes_cap = bytes.ByteLength();
  // The wake's callbacks own the bridge: it is deleted (with its references) when they are
  // released, on the JS thread, once the wake closed.
  b->wake_ = LoopWake::Create(
      env, "nydus-fuse-session", [b](Napi::Env e) { b->OnWake(e); },
      [b] {
        // The session's own cleanup hook (registered after this one, so it ran first) stopped
        // the transports and failed what was pending.
        b->tearing_down_ = true;
        b->wake_->Close();
      });
  b->wake_->Ref();
  b->active_ = true;
  return b.get();
}

void FuseBridge::Wake() {
  std::shared_ptr<LoopWake> wake;
  {
    std::lock_guard lock(mu_);
    if (!active_) return;
    wake = wake_;
  }
  // After the lock: the woken loop may take it at once (PushLoopback, OnWake).
  wake->Send();
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
  {
    std::lock_guard lock(mu_);
    if (!active_) return;
    active_ = false;
  }
  // One more delivery for what is queued (as a released thread-safe function drained its queue),
  // after which OnWake closes the wake.
  wake_->Send();
}

void FuseBridge::OnWake(Napi::Env env) {
  if (tearing_down_) return;
  wake_->RunCallback(env, [&] { Deliver(env, dispatch_.Value()); });
  bool released;
  {
    std::lock_guard lock(mu_);
    released = !active_;
  }
  if (released) wake_->Close();  // may delete this bridge later, in the close callback
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
      napi_value error = nullptr;
      if (!LoopWake::CallJs(
              env, fn,
              {Napi::Number::New(env, kDispatchLoopback), Napi::Number::New(env, l.id), buf},
              &error)) {
        NLOG_ERROR(kLog, "FUSE dispatcher threw on a loopback reply: %s",
                   Describe(env, error).c_str());
      }
    }
    if (session_ == nullptr) return;
    const size_t n = session_->DrainUpcalls(&arena_);
    if (n == 0) {
      std::lock_guard lock(mu_);
      if (loopback_.empty()) return;
      continue;
    }
    napi_value error = nullptr;
    if (!LoopWake::CallJs(env, fn,
                          {Napi::Number::New(env, kDispatchBatch),
                           Napi::Number::New(env, static_cast<double>(n))},
                          &error)) {
      // The TypeScript dispatcher catches handler failures per request; reaching here is a bug
      // in the dispatcher itself. The batch's requests stay pending until stop.
      NLOG_ERROR(kLog, "FUSE dispatcher threw: %s", Describe(env, error).c_str());
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
