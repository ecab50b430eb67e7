// Hands work from any thread to one environment's JavaScript thread: our own uv_async_t in
// place of a Node-API thread-safe function.
//
// Why not a thread-safe function: its producer calls uv_async_send (an eventfd write that wakes
// the loop) while it still holds the function's queue mutex. With 2 cores and a kernel without
// preemption, the producer is often switched out right after that write, still holding the
// mutex, and the woken loop then blocks on that mutex in its dispatch for 1-11 ms (a traced
// event-loop delay of the validated cold read). Here a producer releases its queue lock before
// it wakes the loop, and the loop holds that lock only to swap the queue out.
//
// Lifetime (the handle is closed on the loop thread; memory is freed when the last holder lets go):
//  - Create() registers an async cleanup hook: at environment teardown `on_teardown` runs on the
//    JS thread (JavaScript may no longer be called) and the environment waits, turning its loop,
//    until the owner calls Close(). So an owner may first wait for work still running on other
//    threads (memory that work reads, such as a Buffer, lives until then).
//  - Close() (JS thread, idempotent) stops every further `on_wake`; the hook is removed in the
//    handle's close callback, after which the callbacks (and what they captured) are released.
//  - Send() is safe from any thread at any time while the caller holds a shared_ptr to this
//    object: once Close() ran, libuv (1.45+) makes a late uv_async_send a no-op, and it waits
//    for one that is mid-way.
#pragma once

#include <napi.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace nydus::binding {

class LoopWake {
 public:
  using WakeFn = std::function<void(Napi::Env)>;
  using TeardownFn = std::function<void()>;

  // JS thread. The handle starts unreferenced (it does not keep the loop alive); `on_wake` runs
  // in a handle scope, at least once after every Send(), never after Close(). Throws on failure.
  static std::shared_ptr<LoopWake> Create(Napi::Env env, const char* name, WakeFn on_wake,
                                          TeardownFn on_teardown);
  ~LoopWake();
  LoopWake(const LoopWake&) = delete;
  LoopWake& operator=(const LoopWake&) = delete;

  // Any thread: schedules `on_wake` (wakes coalesce). Never blocks on the loop thread.
  void Send();
  // JS thread: calls `fn` through the C API: node-addon-api's Function::Call aborts the process
  // (NAPI_FATAL_IF_FAILED) when the callee ends the environment (process.exit() in a Worker)
  // and it wraps the termination. True when `fn` returned; when it threw, `*error` holds the
  // exception (cleared), or null when the environment is terminating.
  static bool CallJs(napi_env env, napi_value fn, std::initializer_list<napi_value> args,
                     napi_value* error);
  // JS thread: `error` as an uncaught exception (see RunCallback); a no-op once the environment
  // is stopping.
  static void ReportUncaught(napi_env env, napi_value error);

  // JS thread: whether the handle keeps the event loop alive.
  void Ref();
  void Unref();
  // JS thread; idempotent.
  void Close();
  bool closed() const { return closed_; }  // JS thread

  // JS thread: runs `fn` as a thread-safe function ran its call_js: in its own handle scope and
  // callback scope (promise reactions and nextTicks run when it returns, as after any callback),
  // with a JavaScript exception it raises (or a C++ Napi::Error) reported as an uncaught
  // exception ('uncaughtException'), never swallowed. Returns false when `fn` threw.
  // Any JS-calling code may run in `fn`; to call a JavaScript function prefer CallJs below.
  template <typename F>
  bool RunCallback(Napi::Env env, F&& fn) {
    Napi::HandleScope scope(env);
    CallbackScope cb(env, context_);
    try {
      fn();
      return true;
    } catch (const Napi::Error& e) {
      ReportUncaught(env, e);
      return false;
    }
  }

 private:
  // napi_open/close_callback_scope without a resource object per call (the resource argument is
  // ignored by Node; the async context carries one).
  class CallbackScope {
   public:
    CallbackScope(napi_env env, napi_async_context context);
    ~CallbackScope();
    CallbackScope(const CallbackScope&) = delete;
    CallbackScope& operator=(const CallbackScope&) = delete;

   private:
    napi_env env_;
    napi_callback_scope scope_ = nullptr;
  };

  LoopWake() = default;
  static void OnAsync(uv_async_t* handle);
  static void OnClosed(uv_handle_t* handle);
  static void OnTeardownHook(napi_async_cleanup_hook_handle hook, void* arg);
  static void ReportUncaught(Napi::Env env, const Napi::Error& e);

  // JS thread only (the handle itself is libuv's; Send() uses only uv_async_send).
  uv_async_t async_{};
  napi_env env_ = nullptr;
  napi_async_context context_ = nullptr;
  napi_async_cleanup_hook_handle hook_ = nullptr;
  WakeFn on_wake_;
  TeardownFn on_teardown_;
  bool closed_ = false;
  // Any thread sets it in Send(); the loop clears it before each on_wake_. A Send() during
  // on_wake_ (the JavaScript it ran injected more work, or another thread finished some) is then
  // served in the same loop turn, as a thread-safe function's dispatch loop served its queue:
  // libuv would otherwise leave it for the next poll, after this turn's setImmediate callbacks.
  std::atomic<bool> requested_{false};
  // Holds this object while the handle is open (released in the close callback).
  std::shared_ptr<LoopWake> self_;
};

// Items produced on any thread, consumed on the JS thread in production order: a plain
// mutex-protected vector (held for a push_back, or a swap) plus a LoopWake sent after the lock
// is released.
template <typename T>
class WakeQueue {
 public:
  // Any thread.
  void Push(T item, LoopWake* wake) {
    Enqueue(std::move(item));
    wake->Send();
  }
  // Any thread: queues without waking (the caller sends the wake itself, after its own locks).
  void Enqueue(T item) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(item));
  }
  // JS thread: everything queued so far, oldest first. The returned vector is reused by the next
  // call (callers consume it before then).
  std::vector<T>& TakeAll() {
    spare_.clear();
    std::lock_guard lock(mu_);
    spare_.swap(items_);
    return spare_;
  }

 private:
  std::mutex mu_;
  std::vector<T> items_;  // guarded by mu_
  std::vector<T> spare_;  // JS thread only: the batch being consumed
};

}  // namespace nydus::binding
