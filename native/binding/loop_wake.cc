#include "loop_wake.h"

#include <exception>

#include "common/log.h"

namespace nydus::binding {
namespace {
constexpr const char* kLog = "loop-wake";
}

std::shared_ptr<LoopWake> LoopWake::Create(Napi::Env env, const char* name, WakeFn on_wake,
                                           TeardownFn on_teardown) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, std::string("no event loop for ") + name);
  }
  std::shared_ptr<LoopWake> w(new LoopWake());
  w->env_ = env;
  napi_value resource = Napi::Object::New(env);
  if (napi_async_init(env, resource, Napi::String::New(env, name), &w->context_) != napi_ok) {
    throw Napi::Error::New(env, std::string("async context for ") + name);
  }
  if (uv_async_init(loop, &w->async_, OnAsync) != 0) {
    napi_async_destroy(env, w->context_);
    throw Napi::Error::New(env, std::string("uv_async_init for ") + name);
  }
  w->async_.data = w.get();
  uv_unref(reinterpret_cast<uv_handle_t*>(&w->async_));
  w->self_ = w;  // the handle is open from here on: only Close() lets go
  w->on_wake_ = std::move(on_wake);
  w->on_teardown_ = std::move(on_teardown);
  if (napi_add_async_cleanup_hook(env, OnTeardownHook, w.get(), &w->hook_) != napi_ok) {
    w->hook_ = nullptr;
    w->Close();
    throw Napi::Error::New(env, std::string("cleanup hook for ") + name);
  }
  return w;
}

LoopWake::~LoopWake() = default;

void LoopWake::Send() {
  // ORDERING: release pairs with the acquire exchange in OnAsync; what the caller queued before
  // is published by its queue's mutex anyway.
  requested_.store(true, std::memory_order_release);
  // The return value is always 0 (a closed handle makes it a no-op).
  (void)uv_async_send(&async_);
}

void LoopWake::Ref() {
  if (!closed_) uv_ref(reinterpret_cast<uv_handle_t*>(&async_));
}

void LoopWake::Unref() {
  if (!closed_) uv_unref(reinterpret_cast<uv_handle_t*>(&async_));
}

void LoopWake::Close() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), OnClosed);
}

void LoopWake::OnAsync(uv_async_t* handle) {
  auto* w = static_cast<LoopWake*>(handle->data);
  if (w->closed_ || !w->on_wake_) return;
  std::shared_ptr<LoopWake> keep = w->self_;  // on_wake_ may Close()
  Napi::Env env(w->env_);
  // As many rounds as Sends keep coming during them, bounded so other callbacks still run (the
  // bound is a thread-safe function's); past it, the next loop turn continues.
  constexpr int kMaxRounds = 1000;
  int rounds = 0;
  Napi::HandleScope outer(env);  // for the error report
  try {
    // ORDERING: acquire pairs with Send()'s release store.
    while (!w->closed_ && w->requested_.exchange(false, std::memory_order_acquire)) {
      if (++rounds > kMaxRounds) {
        w->Send();
        break;
      }
      Napi::HandleScope scope(env);
      w->on_wake_(env);
    }
  } catch (const Napi::Error& e) {
    w->ReportUncaught(env, e);
  } catch (const std::exception& e) {
    // Nothing may unwind into libuv.
    NLOG_ERROR(kLog, "a completion failed: %s", e.what());
  }
}

void LoopWake::OnClosed(uv_handle_t* handle) {
  auto* w = static_cast<LoopWake*>(handle->data);
  std::shared_ptr<LoopWake> self = std::move(w->self_);  // frees w when the last holder is done
  if (w->context_ != nullptr) {
    // During teardown this emits no destroy hook (JavaScript can no longer run): that is Node's
    // own check, so it is safe here too.
    napi_async_destroy(w->env_, w->context_);
    w->context_ = nullptr;
  }
  // Releases what the callbacks captured (possibly the owner), on the JS thread.
  w->on_wake_ = nullptr;
  w->on_teardown_ = nullptr;
  if (w->hook_ != nullptr) {
    // Before the hook ran this unregisters it; after, it tells the environment this piece of
    // its teardown is done.
    napi_remove_async_cleanup_hook(w->hook_);
    w->hook_ = nullptr;
  }
}

void LoopWake::OnTeardownHook(napi_async_cleanup_hook_handle, void* arg) {
  auto* w = static_cast<LoopWake*>(arg);
  if (w->closed_) return;  // closing already: the close callback ends this hook
  // While the owner waits (work still running elsewhere), the environment turns its loop with
  // UV_RUN_ONCE: referenced, the handle makes that block until the next Send() instead of spin.
  uv_ref(reinterpret_cast<uv_handle_t*>(&w->async_));
  std::shared_ptr<LoopWake> keep = w->self_;
  if (w->on_teardown_) {
    w->on_teardown_();
  } else {
    w->Close();
  }
}

void LoopWake::ReportUncaught(Napi::Env env, const Napi::Error& e) {
  // What a thread-safe function's uncaught-exception policy does: 'uncaughtException'. It fails
  // only once the environment is stopping, when nothing could observe the error any more.
  napi_value err = e.Value();
  const napi_status st = err == nullptr ? napi_invalid_arg : napi_fatal_exception(env, err);
  if (st != napi_ok && st != napi_pending_exception && st != napi_cannot_run_js) {
    NLOG_ERROR(kLog, "a completion threw and could not be reported: %s", e.Message().c_str());
  }
}

bool LoopWake::CallJs(napi_env env, napi_value fn, std::initializer_list<napi_value> args,
                      napi_value* error) {
  *error = nullptr;
  napi_value global = nullptr;
  napi_value result = nullptr;
  if (napi_get_global(env, &global) == napi_ok &&
      napi_call_function(env, global, fn, args.size(), args.begin(), &result) == napi_ok) {
    return true;
  }
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value exc = nullptr;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) *error = exc;
  }
  return false;
}

void LoopWake::ReportUncaught(napi_env env, napi_value error) {
  if (error != nullptr) (void)napi_fatal_exception(env, error);
}

LoopWake::CallbackScope::CallbackScope(napi_env env, napi_async_context context) : env_(env) {
  if (napi_open_callback_scope(env, nullptr, context, &scope_) != napi_ok) scope_ = nullptr;
}

LoopWake::CallbackScope::~CallbackScope() {
  if (scope_ != nullptr) napi_close_callback_scope(env_, scope_);
}

}  // namespace nydus::binding
