// Shared helpers of the Node-API glue. Only files in native/binding include <napi.h>
// (style rule 4); the core below stays plain C++.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

namespace nydus::cache {
class ChunkMap;
}

namespace nydus::binding {

// Each binding file adds its functions and classes to the module's exports.
void RegisterErrors(Napi::Env env, Napi::Object exports);
void RegisterCodec(Napi::Env env, Napi::Object exports);
void RegisterFill(Napi::Env env, Napi::Object exports);
void RegisterLayout(Napi::Env env, Napi::Object exports);
void RegisterChunkMap(Napi::Env env, Napi::Object exports);
void RegisterLog(Napi::Env env, Napi::Object exports);
void RegisterXattr(Napi::Env env, Napi::Object exports);
void RegisterRlimit(Napi::Env env, Napi::Object exports);
// listenUnixSocket() (unix_listen_binding.cc).
void RegisterUnixListen(Napi::Env env, Napi::Object exports);
void RegisterFuseSession(Napi::Env env, Napi::Object exports);
// abiInfo() (abi_binding.cc).
void RegisterAbi(Napi::Env env, Napi::Object exports);
// loopWakeProbe(count, onItem) (loop_wake_probe.cc): the fill's completion path without a fill,
// for tests (order, exactly once, errors, teardown).
void RegisterLoopWakeProbe(Napi::Env env, Napi::Object exports);

// The core chunk map behind a JS ChunkMap handle (null when `value` is not one). The READ fast
// path keeps the shared_ptr, so closing the JS handle does not unmap it under a reader.
std::shared_ptr<cache::ChunkMap> ChunkMapFromValue(Napi::Value value);

// Builds an error of the TypeScript-defined class passed to `initialize()` (style rule 8), with
// a stable `code` string and the errno when there is one. Falls back to a plain Error carrying
// the same properties before initialize() ran.
Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      int err = 0);

// Argument checks that throw a TypeError naming the argument.
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace nydus::binding
