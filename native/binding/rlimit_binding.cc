// getRlimitNofile() / setRlimitNofile(soft, hard) for `nydusd --rlimit-nofile`.
#include <cmath>
#include <cstdint>
#include <string>

#include "binding.h"
#include "common/rlimit.h"

namespace nydus::binding {
namespace {

// Limits cross as doubles; values above 2^53 (in practice only RLIM_INFINITY) are reported as
// Infinity so JS never sees a rounded number.
Napi::Value LimitValue(Napi::Env env, uint64_t v) {
  constexpr uint64_t kMaxSafe = (uint64_t{1} << 53) - 1;
  return Napi::Number::New(env, v > kMaxSafe ? INFINITY : static_cast<double>(v));
}

uint64_t ArgLimit(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d == INFINITY) return UINT64_MAX;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(info.Env(),
                                std::string(name) + " must be a non-negative integer or Infinity");
  }
  return static_cast<uint64_t>(d);
}

Napi::Value GetRlimitNofile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NofileLimit limit;
  int rc = GetNofileLimit(&limit);
  if (rc != 0) throw MakeError(env, "ERR_RLIMIT", "getrlimit(RLIMIT_NOFILE) failed", rc);
  Napi::Object o = Napi::Object::New(env);
  o.Set("soft", LimitValue(env, limit.soft));
  o.Set("hard", LimitValue(env, limit.hard));
  return o;
}

void SetRlimitNofile(const Napi::CallbackInfo& info) {
  NofileLimit limit;
  limit.soft = ArgLimit(info, 0, "soft");
  limit.hard = ArgLimit(info, 1, "hard");
  int rc = SetNofileLimit(limit);
  if (rc != 0) throw MakeError(info.Env(), "ERR_RLIMIT", "setrlimit(RLIMIT_NOFILE) failed", rc);
}

}  // namespace

void RegisterRlimit(Napi::Env env, Napi::Object exports) {
  exports.Set("getRlimitNofile", Napi::Function::New(env, GetRlimitNofile, "getRlimitNofile"));
  exports.Set("setRlimitNofile", Napi::Function::New(env, SetRlimitNofile, "setRlimitNofile"));
}

}  // namespace nydus::binding
