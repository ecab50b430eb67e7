// readXattrs(path: Buffer) -> [name: Buffer, value: Buffer][] for the image builder, and
// setXattr(path, name, value) for building test trees. Paths and names are raw bytes end to end:
// file names need not be valid UTF-8.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <string>
#include <vector>

#include "binding.h"
#include "fs/xattr.h"

namespace nydus::binding {
namespace {

std::string ArgCString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  auto buf = ArgBuffer(info, i, name);
  std::string s(reinterpret_cast<const char*>(buf.Data()), buf.Length());
  if (s.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must not contain NUL bytes");
  }
  return s;
}

Napi::Value ReadXattrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgCString(info, 0, "path");
  std::vector<fs::XattrPair> pairs;
  int rc = fs::ReadXattrs(path, &pairs);
  if (rc < 0) {
    throw MakeError(env, "ERR_XATTR", "cannot read extended attributes of " + path, rc);
  }
  Napi::Array result = Napi::Array::New(env, pairs.size());
  for (uint32_t i = 0; i < pairs.size(); ++i) {
    const auto& [name, value] = pairs[i];
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(name.data()),
                                             name.size()));
    pair.Set(1u, Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size()));
    result.Set(i, pair);
  }
  return result;
}

void SetXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgCString(info, 0, "path");
  std::string name = ArgCString(info, 1, "name");
  auto value = ArgBuffer(info, 2, "value");
  int rc =
      fs::SetXattr(path, name, std::vector<uint8_t>(value.Data(), value.Data() + value.Length()));
  if (rc < 0) {
    throw MakeError(env, "ERR_XATTR", "cannot set extended attribute " + name + " on " + path, rc);
  }
}

// The writable overlay's host calls Node lacks (fs/overlay-host.ts): lsetxattr with the
// guest's flags, lremovexattr, and mknod (whiteouts, device nodes, FIFOs). Each throws the
// errno on failure.
void HostSetXattr(const Napi::CallbackInfo& info) {
  std::string path = ArgCString(info, 0, "path");
  std::string name = ArgCString(info, 1, "name");
  auto value = ArgBuffer(info, 2, "value");
  int flags = info[3].As<Napi::Number>().Int32Value();
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), flags) != 0) {
    const int e = errno;
    throw MakeError(info.Env(), "ERR_XATTR", "lsetxattr " + name + " on " + path, -e);
  }
}

void HostRemoveXattr(const Napi::CallbackInfo& info) {
  std::string path = ArgCString(info, 0, "path");
  std::string name = ArgCString(info, 1, "name");
  if (lremovexattr(path.c_str(), name.c_str()) != 0) {
    const int e = errno;
    throw MakeError(info.Env(), "ERR_XATTR", "lremovexattr " + name + " on " + path, -e);
  }
}

void HostMknod(const Napi::CallbackInfo& info) {
  std::string path = ArgCString(info, 0, "path");
  const uint32_t mode = info[1].As<Napi::Number>().Uint32Value();
  const uint32_t rdev = info[2].As<Napi::Number>().Uint32Value();
  if (mknod(path.c_str(), mode, static_cast<dev_t>(rdev)) != 0) {
    const int e = errno;
    throw MakeError(info.Env(), "ERR_MKNOD", "mknod " + path, -e);
  }
}

}  // namespace

void RegisterXattr(Napi::Env env, Napi::Object exports) {
  exports.Set("readXattrs", Napi::Function::New(env, ReadXattrs, "readXattrs"));
  exports.Set("setXattr", Napi::Function::New(env, SetXattr, "setXattr"));
  exports.Set("hostSetXattr", Napi::Function::New(env, HostSetXattr, "hostSetXattr"));
  exports.Set("hostRemoveXattr", Napi::Function::New(env, HostRemoveXattr, "hostRemoveXattr"));
  exports.Set("hostMknod", Napi::Function::New(env, HostMknod, "hostMknod"));
}

}  // namespace nydus::binding
