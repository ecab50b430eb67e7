// Module entry point of the addon: registers every binding file's exports.
#include "binding.h"

namespace nydus::binding {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterErrors(env, exports);
  RegisterLog(env, exports);
  RegisterCodec(env, exports);
  RegisterFill(env, exports);
  RegisterLayout(env, exports);
  RegisterChunkMap(env, exports);
  RegisterFuseSession(env, exports);
  RegisterXattr(env, exports);
  RegisterRlimit(env, exports);
  RegisterUnixListen(env, exports);
  RegisterAbi(env, exports);
  RegisterLoopWakeProbe(env, exports);
  return exports;
}

}  // namespace nydus::binding

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return nydus::binding::Init(env, exports);
}

NODE_API_MODULE(nydus_native, InitModule)
