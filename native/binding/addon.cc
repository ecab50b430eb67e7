// Module entry point of the addon: registers every binding file's exports.
#include "binding.h"

namespace nydus::binding {
namespace {

Napi::Object AbiInfo(const Napi::CallbackInfo& info) {
  // Layout facts the TypeScript side mirrors; a unit test compares them so the two cannot drift.
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("napiVersion", NAPI_VERSION);
  o.Set("chunkMapHeaderSize", 4096);
  return o;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterErrors(env, exports);
  RegisterLog(env, exports);
  RegisterCodec(env, exports);
  RegisterFill(env, exports);
  RegisterChunkMap(env, exports);
  RegisterFuseSession(env, exports);
  RegisterXattr(env, exports);
  RegisterRlimit(env, exports);
  exports.Set("abiInfo", Napi::Function::New(env, AbiInfo, "abiInfo"));
  return exports;
}

}  // namespace nydus::binding

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return nydus::binding::Init(env, exports);
}

NODE_API_MODULE(nydus_native, InitModule)
