// Bridges core log records (common/log.h) to the TypeScript logger.
//
// Records are produced on any thread; they cross to the JS thread through one thread-safe
// function. The level threshold is mirrored into the core so disabled levels cost one atomic load.
#include <memory>
#include <mutex>
#include <string>

#include "binding.h"
#include "common/log.h"

namespace nydus::binding {
namespace {

struct LogRecord {
  int level;
  std::string module;
  std::string message;
};

void DeliverRecord(Napi::Env env, Napi::Function fn, std::nullptr_t*, LogRecord* rec) {
  std::unique_ptr<LogRecord> owned(rec);
  if (env == nullptr || fn == nullptr) return;
  try {
    fn.Call({Napi::Number::New(env, rec->level), Napi::String::New(env, rec->module),
             Napi::String::New(env, rec->message)});
  } catch (const Napi::Error&) {
    // A throwing log handler (or a terminating environment) must not take the process down;
    // the record is lost, which is all a logger may do.
  }
}

using LogTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, LogRecord, DeliverRecord>;

// Guarded by g_mu: the current bridge (replaced by setLogHandler, finalized at env teardown).
// g_generation tells a late finalizer of a replaced bridge not to switch off the current one.
std::mutex g_mu;
LogTsfn g_tsfn;
bool g_active = false;
uint64_t g_generation = 0;

void Sink(LogLevel level, const char* module, const char* message) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_active) {
    std::fprintf(stderr, "[native] %s: %s\n", module, message);
    return;
  }
  auto* rec = new LogRecord{static_cast<int>(level), module, message};
  if (g_tsfn.NonBlockingCall(rec) != napi_ok) delete rec;
}

// setLogHandler(fn | null, level): fn(level, module, message) runs on the JS thread.
void SetLogHandler(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_active) {
    g_tsfn.Release();
    g_active = false;
  }
  if (info[0].IsFunction()) {
    uint64_t gen = ++g_generation;
    g_tsfn = LogTsfn::New(
        env, info[0].As<Napi::Function>(), "nydus-log", 0, 1, static_cast<std::nullptr_t*>(nullptr),
        [gen](Napi::Env, void*, std::nullptr_t*) {
          std::lock_guard<std::mutex> finalize_lock(g_mu);
          if (gen == g_generation && g_active) {
            g_active = false;
            SetLogSink(nullptr);
          }
        },
        static_cast<void*>(nullptr));
    // The bridge must not keep the process alive on its own.
    g_tsfn.Unref(env);
    g_active = true;
    SetLogSink(Sink);
  } else {
    SetLogSink(nullptr);
  }
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

}  // namespace

void RegisterLog(Napi::Env env, Napi::Object exports) {
  exports.Set("setLogHandler", Napi::Function::New(env, SetLogHandler, "setLogHandler"));
  exports.Set("setLogLevel", Napi::Function::New(env, SetNativeLogLevel, "setLogLevel"));
  exports.Set("nativeLog", Napi::Function::New(env, NativeLog, "nativeLog"));
}

}  // namespace nydus::binding
