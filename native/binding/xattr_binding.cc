// readXattrs(path: Buffer) -> [name: Buffer, value: Buffer][] for the image builder, and
// setXattr(path, name, value) for building test trees. Paths and names are raw bytes end to end:
// file names need not be valid UTF-8.
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

}  // namespace

void RegisterXattr(Napi::Env env, Napi::Object exports) {
  exports.Set("readXattrs", Napi::Function::New(env, ReadXattrs, "readXattrs"));
  exports.Set("setXattr", Napi::Function::New(env, SetXattr, "setXattr"));
}

}  // namespace nydus::binding
