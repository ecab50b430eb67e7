#include <cstring>

#include "binding.h"

namespace nydus::binding {
namespace {

// The per-environment reference to the TypeScript NativeError class.
struct ErrorState {
  Napi::FunctionReference ctor;
};

ErrorState* State(Napi::Env env) { return env.GetInstanceData<ErrorState>(); }

// initialize({ NativeError }): receives the error class used for every native failure.
void Initialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().Get("NativeError").IsFunction()) {
    throw Napi::TypeError::New(env, "initialize() expects { NativeError: class }");
  }
  ErrorState* st = State(env);
  st->ctor = Napi::Persistent(info[0].As<Napi::Object>().Get("NativeError").As<Napi::Function>());
}

}  // namespace

void RegisterErrors(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new ErrorState());
  exports.Set("initialize", Napi::Function::New(env, Initialize, "initialize"));
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message, int err) {
  ErrorState* st = State(env);
  Napi::Object obj;
  if (st != nullptr && !st->ctor.IsEmpty()) {
    obj = st->ctor.New({Napi::String::New(env, message), Napi::String::New(env, code)});
  } else {
    obj = Napi::Error::New(env, message).Value();
    obj.Set("code", code);
  }
  if (err != 0) {
    int e = err < 0 ? -err : err;
    obj.Set("errno", e);
    obj.Set("syscallError", Napi::String::New(env, std::strerror(e)));
  }
  return Napi::Error(env, obj);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a uint32");
  }
  return static_cast<uint32_t>(d);
}

int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  return info[i].As<Napi::Number>().Int32Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBuffer()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Buffer");
  }
  return info[i].As<Napi::Buffer<uint8_t>>();
}

}  // namespace nydus::binding
