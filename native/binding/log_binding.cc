// Bridges core log records (common/log.h) to the TypeScript logger.
//
// Records are produced on any thread; they cross to the JS thread through a queue and a loop
// wake (loop_wake.h), not a thread-safe function: a TSFN's producer wakes the loop while holding
// the lock the loop then takes to dispatch, so a producer switched out at that point stalls the
// loop. The level threshold is mirrored into the core so disabled levels cost one atomic load.
//
// Order: records reach the handler in the order their producers queued them (one queue per
// handler; a record queued before setLogHandler replaced the handler still goes to the old one).
// At environment teardown the records not yet delivered are dropped and the core's sink is
// switched off (later records go to stderr), as a thread-safe function's finalizer did.
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "binding.h"
#include "common/log.h"
#include "loop_wake.h"

namespace nydus::binding {
namespace {

struct LogRecord {
  int level;
  std::string module;
  std::string message;
};

// One handler's bridge. Owned by g_bridge while it is the current one, by its wake's callbacks
// until the wake closes, and briefly by a producer waking it (so it may be freed on any thread:
// the handler's reference lives in the wake's callback, released on the JS thread).
struct LogBridge {
  std::shared_ptr<LoopWake> wake;  // set once at creation
  WakeQueue<LogRecord> queue;
  // Set under g_mu, on whichever JS thread replaced the handler (a Worker may replace the main
  // thread's): nothing more is queued here, so the bridge closes once it delivered the rest.
  std::atomic<bool> released{false};
};

// Guarded by g_mu: the current bridge (null: no handler, the core logs to stderr). Producers
// queue under g_mu, so once a bridge is no longer current nothing more is queued on it. Never
// destroyed: a native thread may still log while the process exits.
std::mutex g_mu;
std::shared_ptr<LogBridge>& g_bridge = *new std::shared_ptr<LogBridge>();

void Sink(LogLevel level, const char* module, const char* message) {
  std::shared_ptr<LogBridge> b;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_bridge == nullptr) {
      std::fprintf(stderr, "[native] %s: %s\n", module, message);
      return;
    }
    b = g_bridge;
    b->queue.Enqueue(LogRecord{static_cast<int>(level), module, message});
  }
  // After g_mu: the loop takes it in setLogHandler (never while delivering, but a producer
  // switched out right after waking the loop must hold no lock the loop may want).
  b->wake->Send();
}

// JS thread: hands what is queued to the handler, each record in its own callback (as a
// thread-safe function did); a throwing handler loses that record only.
void Deliver(Napi::Env env, LogBridge* b, const Napi::FunctionReference& fn) {
  // ORDERING: read before the queue is taken; acquire pairs with ReleaseLocked's release store,
  // which follows every record ever queued here. Released later: its Send() brings another turn.
  const bool released = b->released.load(std::memory_order_acquire);
  std::vector<LogRecord>& batch = b->queue.TakeAll();
  for (LogRecord& r : batch) {
    bool terminating = false;
    b->wake->RunCallback(env, [&] {
      napi_value error = nullptr;
      if (!LoopWake::CallJs(env, fn.Value(),
                            {Napi::Number::New(env, r.level), Napi::String::New(env, r.module),
                             Napi::String::New(env, r.message)},
                            &error)) {
        // A throwing log handler must not take the process down: the record is lost, which is
        // all a logger may do. No error: the environment is terminating.
        terminating = error == nullptr;
      }
    });
    if (terminating) break;
  }
  batch.clear();
  if (released) b->wake->Close();
}

// JS thread: no longer current (g_mu held by the caller): delivers what it queued, then closes.
void ReleaseLocked() {
  if (g_bridge == nullptr) return;
  // ORDERING: release pairs with Deliver's acquire load.
  g_bridge->released.store(true, std::memory_order_release);
  g_bridge->wake->Send();
  g_bridge = nullptr;
}

// setLogHandler(fn | null, level): fn(level, module, message) runs on the JS thread.
void SetLogHandler(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<LogBridge> b;
  if (info[0].IsFunction()) {
    b = std::make_shared<LogBridge>();
    auto fn =
        std::make_shared<Napi::FunctionReference>(Napi::Persistent(info[0].As<Napi::Function>()));
    LogBridge* raw = b.get();
    // The callbacks own the bridge and the handler until the wake closes (a cycle the close
    // breaks). The handle starts unreferenced: the bridge must not keep the process alive.
    b->wake = LoopWake::Create(
        env, "nydus-log", [b, fn](Napi::Env e) { Deliver(e, b.get(), *fn); },
        [raw] {
          // Environment teardown: JavaScript can no longer run; drop what is queued and, when
          // this is still the current bridge, send later records to stderr.
          {
            std::lock_guard<std::mutex> lock(g_mu);
            if (g_bridge.get() == raw) {
              g_bridge = nullptr;
              SetLogSink(nullptr);
            }
          }
          raw->queue.TakeAll().clear();
          raw->wake->Close();
        });
  }
  std::lock_guard<std::mutex> lock(g_mu);
  ReleaseLocked();
  g_bridge = std::move(b);
  SetLogSink(g_bridge != nullptr ? Sink : nullptr);
}

void SetNativeLogLevel(const Napi::CallbackInfo& info) {
  int32_t level = ArgI32(info, 0, "level");
  if (level < 0 || level > static_cast<int>(LogLevel::kOff)) {
    throw Napi::RangeError::New(info.Env(), "log level must be 0..5");
  }
  SetLogLevel(static_cast<LogLevel>(level));
}

// nativeLog(level, module, message): lets tests exercise the bridge end to end.
void NativeLog(const Napi::CallbackInfo& info) {
  int32_t level = ArgI32(info, 0, "level");
  std::string module = ArgString(info, 1, "module");
  std::string message = ArgString(info, 2, "message");
  NYDUS_LOG(static_cast<LogLevel>(level), module.c_str(), "%s", message.c_str());
}

// nativeLogBurst(threads, count, module): `threads` native threads each log `count` info records
// "<thread> <seq>" at once, joined before it returns; for tests of order and teardown.
void NativeLogBurst(const Napi::CallbackInfo& info) {
  const uint32_t threads = ArgU32(info, 0, "threads");
  const uint32_t count = ArgU32(info, 1, "count");
  const std::string module = ArgString(info, 2, "module");
  if (threads == 0 || threads > 16 || count > 1'000'000) {
    throw Napi::RangeError::New(info.Env(), "threads must be 1..16 and count at most 1000000");
  }
  std::vector<std::thread> ts;
  for (uint32_t t = 0; t < threads; ++t) {
    ts.emplace_back([t, count, &module] {
      for (uint32_t i = 0; i < count; ++i) NLOG_INFO(module.c_str(), "%u %u", t, i);
    });
  }
  for (auto& th : ts) th.join();
}

}  // namespace

void RegisterLog(Napi::Env env, Napi::Object exports) {
  exports.Set("setLogHandler", Napi::Function::New(env, SetLogHandler, "setLogHandler"));
  exports.Set("setLogLevel", Napi::Function::New(env, SetNativeLogLevel, "setLogLevel"));
  exports.Set("nativeLog", Napi::Function::New(env, NativeLog, "nativeLog"));
  exports.Set("nativeLogBurst", Napi::Function::New(env, NativeLogBurst, "nativeLogBurst"));
}

}  // namespace nydus::binding
