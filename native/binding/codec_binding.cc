// compress / decompress / digests (BLAKE3, SHA-256) for the builder, digest validation and the
// cache-fill path. These run on the calling JS thread: they are used per chunk (up to a few MiB),
// where a thread hop costs more than it saves (the builder's chunk workers are worker_threads).
#include <string>

#include "binding.h"
#include "codec/codec.h"
#include "codec/digest.h"

namespace nydus::binding {
namespace {

codec::Algo ArgAlgo(const Napi::CallbackInfo& info, size_t i) {
  uint32_t a = ArgU32(info, i, "algo");
  if (a != 0 && a != 1 && a != 3) {
    throw MakeError(info.Env(), "ERR_NATIVE_CODEC",
                    "compression algorithm " + std::to_string(a) + " is not handled natively");
  }
  return static_cast<codec::Algo>(a);
}

// compress(algo, src, level?) -> Buffer
Napi::Value Compress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  codec::Algo algo = ArgAlgo(info, 0);
  auto src = ArgBuffer(info, 1, "src");
  int level = info.Length() > 2 && info[2].IsNumber() ? ArgI32(info, 2, "level") : 0;
  size_t bound = codec::CompressBound(algo, src.Length());
  if (bound == 0 && src.Length() != 0) {
    throw MakeError(env, "ERR_NATIVE_CODEC", "input too large to compress");
  }
  auto out = Napi::Buffer<uint8_t>::New(env, bound == 0 ? 1 : bound);
  ssize_t n = codec::Compress(algo, src.Data(), src.Length(), out.Data(), out.Length(), level);
  if (n < 0) throw MakeError(env, "ERR_NATIVE_CODEC", "compression failed", static_cast<int>(n));
  return Napi::Buffer<uint8_t>::Copy(env, out.Data(), static_cast<size_t>(n));
}

// decompress(algo, src, uncompressedSize) -> Buffer of exactly uncompressedSize bytes
Napi::Value Decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  codec::Algo algo = ArgAlgo(info, 0);
  auto src = ArgBuffer(info, 1, "src");
  uint32_t usize = ArgU32(info, 2, "uncompressedSize");
  auto out = Napi::Buffer<uint8_t>::New(env, usize);
  ssize_t n = codec::Decompress(algo, src.Data(), src.Length(), out.Data(), usize);
  if (n < 0) {
    throw MakeError(env, "ERR_CORRUPT_CHUNK",
                    "chunk data does not decompress to " + std::to_string(usize) + " bytes",
                    static_cast<int>(n));
  }
  return out;
}

// decompressInto(algo, src, dst) -> undefined; dst.length is the uncompressed size
void DecompressInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  codec::Algo algo = ArgAlgo(info, 0);
  auto src = ArgBuffer(info, 1, "src");
  auto dst = ArgBuffer(info, 2, "dst");
  ssize_t n = codec::Decompress(algo, src.Data(), src.Length(), dst.Data(), dst.Length());
  if (n < 0) {
    throw MakeError(env, "ERR_CORRUPT_CHUNK",
                    "chunk data does not decompress to " + std::to_string(dst.Length()) + " bytes",
                    static_cast<int>(n));
  }
}

codec::DigestAlgo ArgDigest(const Napi::CallbackInfo& info, size_t i) {
  uint32_t a = ArgU32(info, i, "digester");
  if (a != static_cast<uint32_t>(codec::DigestAlgo::kBlake3) &&
      a != static_cast<uint32_t>(codec::DigestAlgo::kSha256)) {
    throw MakeError(info.Env(), "ERR_NATIVE_CODEC",
                    "digester " + std::to_string(a) + " is unknown");
  }
  return static_cast<codec::DigestAlgo>(a);
}

// digest(digester, data) -> 32-byte Buffer (digester: the RAFS enum, 0 blake3, 1 sha256)
Napi::Value DigestOf(const Napi::CallbackInfo& info) {
  codec::DigestAlgo algo = ArgDigest(info, 0);
  auto src = ArgBuffer(info, 1, "data");
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), codec::kDigestLen);
  if (!codec::Digest(algo, src.Data(), src.Length(), out.Data())) {
    throw MakeError(info.Env(), "ERR_NATIVE_CODEC", "sha256 failed (OpenSSL is out of memory)");
  }
  return out;
}

// new DigestHasher(digester): update(data) -> this, digest() -> 32-byte Buffer; digest() does
// not end the hasher (more input may follow).
class DigestHasherWrap : public Napi::ObjectWrap<DigestHasherWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DigestHasher",
                       {InstanceMethod<&DigestHasherWrap::Update>("update"),
                        InstanceMethod<&DigestHasherWrap::Digest>("digest")});
  }
  explicit DigestHasherWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<DigestHasherWrap>(info), hasher_(ArgDigest(info, 0)) {}

 private:
  codec::DigestHasher hasher_;

  Napi::Value Update(const Napi::CallbackInfo& info) {
    auto src = ArgBuffer(info, 0, "data");
    if (!hasher_.Update(src.Data(), src.Length())) {
      throw MakeError(info.Env(), "ERR_NATIVE_CODEC", "sha256 failed (OpenSSL is out of memory)");
    }
    return info.This();
  }
  Napi::Value Digest(const Napi::CallbackInfo& info) {
    auto out = Napi::Buffer<uint8_t>::New(info.Env(), codec::kDigestLen);
    if (!hasher_.Finalize(out.Data())) {
      throw MakeError(info.Env(), "ERR_NATIVE_CODEC", "sha256 failed (OpenSSL is out of memory)");
    }
    return out;
  }
};

}  // namespace

void RegisterCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("compress", Napi::Function::New(env, Compress, "compress"));
  exports.Set("decompress", Napi::Function::New(env, Decompress, "decompress"));
  exports.Set("decompressInto", Napi::Function::New(env, DecompressInto, "decompressInto"));
  exports.Set("digest", Napi::Function::New(env, DigestOf, "digest"));
  exports.Set("DigestHasher", DigestHasherWrap::Define(env));
}

}  // namespace nydus::binding
