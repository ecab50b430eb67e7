// loopWakeProbe(count, onItem): a native thread hands 0..count-1 to onItem(seq) on the JS thread
// through a WakeQueue and a LoopWake, as fills hand back their results, so tests can check the
// path itself: every item once and in order, a throwing onItem reported as an uncaught exception
// (the rest still delivered), the loop kept alive until the last item and not after, and an
// environment torn down mid-stream (a Worker exiting) waiting for the producer, then dropping.
#include <memory>
#include <thread>

#include "binding.h"
#include "loop_wake.h"

namespace nydus::binding {
namespace {

struct Probe {
  std::shared_ptr<LoopWake> wake;  // set once before the producer starts
  WakeQueue<uint32_t> items;
  uint32_t count = 0;
  // JS thread only.
  Napi::FunctionReference on_item;
  uint32_t delivered = 0;
  bool tearing_down = false;
};

void Deliver(Napi::Env env, Probe* p) {
  for (uint32_t seq : p->items.TakeAll()) {
    ++p->delivered;
    if (p->tearing_down) continue;
    p->wake->RunCallback(env, [&] {
      napi_value error = nullptr;
      if (!LoopWake::CallJs(env, p->on_item.Value(), {Napi::Number::New(env, seq)}, &error)) {
        LoopWake::ReportUncaught(env, error);
      }
    });
  }
  if (p->delivered < p->count) return;
  p->on_item.Reset();  // here, on the JS thread: the producer may hold the probe longest
  p->wake->Unref();
  p->wake->Close();
}

void LoopWakeProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t count = ArgU32(info, 0, "count");
  if (count == 0) throw Napi::RangeError::New(env, "count must be at least 1");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onItem must be a function");
  auto p = std::make_shared<Probe>();
  p->count = count;
  p->on_item = Napi::Persistent(info[1].As<Napi::Function>());
  p->wake = LoopWake::Create(
      env, "nydus-loop-wake-probe", [p](Napi::Env e) { Deliver(e, p.get()); },
      [p, env] {
        p->tearing_down = true;
        Deliver(env, p.get());
      });
  p->wake->Ref();
  std::thread([p] {
    for (uint32_t i = 0; i < p->count; ++i) {
      p->items.Push(i, p->wake.get());
      // Now and then let the loop catch up, so batches of every size occur.
      if (i % 97 == 0) std::this_thread::yield();
    }
  }).detach();
}

}  // namespace

void RegisterLoopWakeProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("loopWakeProbe", Napi::Function::New(env, LoopWakeProbe, "loopWakeProbe"));
}

}  // namespace nydus::binding
