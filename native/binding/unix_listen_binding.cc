// listenUnixSocket(path) -> fd: nydusd's vhost-user socket, listening from early in a start while
// the image is still being mounted; the backend accepts on it later (attachVirtio's listenFd).
#include <string>

#include "binding.h"
#include "common/unix_listen.h"

namespace nydus::binding {
namespace {

// The vhost-user backend's own backlog: one frontend at a time, and a second connect() then
// fails with EAGAIN, which is how the socket-path claim tells a live daemon (util/unix-socket.ts).
constexpr int kBacklog = 1;

Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  UniqueFd fd;
  std::string err;
  int rc = ListenUnixSocket(path, kBacklog, &fd, &err);
  if (rc != 0) throw MakeError(env, "ERR_VIRTIO", "starting the vhost-user backend: " + err, rc);
  return Napi::Number::New(env, fd.release());
}

}  // namespace

void RegisterUnixListen(Napi::Env env, Napi::Object exports) {
  exports.Set("listenUnixSocket", Napi::Function::New(env, ListenUnix, "listenUnixSocket"));
}

}  // namespace nydus::binding
