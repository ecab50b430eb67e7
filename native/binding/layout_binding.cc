// Compressed and encrypted cache files (cache/cache_layout.h), attached to a blob's ChunkMap so
// the fill (fill_binding.cc: cache/layout_store.h) and the READ fast path find them with the map:
//   attachCacheLayout(map, kind, algo, digester, verify, convergent, key | null, dataSize)
//   learnChunks(map, records: Float64Array of abi::LayoutChunkRecord, digests: Buffer (32 each))
//       (the places of chunks cached before; the fill records the ones it stores itself)
//   layoutRead(map, fd, index, out) -> 0 | -errno (the handler's read path; runs on the caller)
#include <cstring>
#include <string>
#include <vector>

#include "abi/js_abi.h"
#include "binding.h"
#include "cache/cache_layout.h"
#include "cache/chunk_map.h"

namespace nydus::binding {
namespace {

constexpr double kSafe = 9007199254740992.0;

bool Whole(double v, double max) {
  return v >= 0 && v <= max && v == static_cast<double>(static_cast<uint64_t>(v));
}

std::shared_ptr<cache::ChunkMap> MapArg(const Napi::CallbackInfo& info) {
  auto map = ChunkMapFromValue(info[0]);
  if (map == nullptr) throw Napi::TypeError::New(info.Env(), "map must be a ChunkMap");
  return map;
}

cache::ChunkLayout* LayoutArg(const Napi::CallbackInfo& info, cache::ChunkMap& map) {
  cache::ChunkLayout* l = map.layout();
  if (l == nullptr) {
    throw MakeError(info.Env(), "ERR_CACHE_FILE", "the chunk map has no cache layout attached");
  }
  return l;
}

Napi::Float64Array RecordsArg(const Napi::CallbackInfo& info, size_t i, size_t stride) {
  if (!info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(info.Env(), "records must be a Float64Array");
  }
  auto a = info[i].As<Napi::Float64Array>();
  if (a.ElementLength() % stride != 0) {
    throw Napi::TypeError::New(info.Env(),
                               "records length must be a multiple of " + std::to_string(stride));
  }
  return a;
}

void AttachCacheLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto map = MapArg(info);
  cache::LayoutOptions o;
  o.kind = static_cast<cache::LayoutKind>(ArgU32(info, 1, "kind"));
  o.algo = static_cast<codec::Algo>(ArgU32(info, 2, "algo"));
  o.digester = static_cast<codec::DigestAlgo>(ArgU32(info, 3, "digester"));
  o.verify = info[4].ToBoolean();
  o.convergent = info[5].ToBoolean();
  if (!info[6].IsNull() && !info[6].IsUndefined()) {
    auto key = ArgBuffer(info, 6, "key");
    if (key.Length() != cache::kCryptKeyLen) {
      throw MakeError(env, "ERR_CONFIG", "the encryption key must be 32 bytes");
    }
    std::memcpy(o.key, key.Data(), cache::kCryptKeyLen);
  } else if (o.kind == cache::LayoutKind::kEncrypted) {
    throw MakeError(env, "ERR_CONFIG", "an encrypted cache needs a key");
  }
  if (!info[7].IsNumber() || !Whole(info[7].As<Napi::Number>().DoubleValue(), kSafe)) {
    throw Napi::TypeError::New(env, "dataSize must be a non-negative safe integer");
  }
  o.data_size = static_cast<uint64_t>(info[7].As<Napi::Number>().DoubleValue());
  std::string err;
  auto layout = cache::ChunkLayout::Create(o, map->chunk_count(), &err);
  if (layout == nullptr) throw MakeError(env, "ERR_CACHE_FILE", err);
  if (!map->AttachLayout(std::move(layout))) {
    throw MakeError(env, "ERR_CACHE_FILE", "the chunk map has a cache layout already");
  }
}

void LearnChunks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto map = MapArg(info);
  cache::ChunkLayout* layout = LayoutArg(info, *map);
  using R = abi::LayoutChunkRecord;
  auto rec = RecordsArg(info, 1, R::kStride);
  auto digests = ArgBuffer(info, 2, "digests");
  const size_t n = rec.ElementLength() / R::kStride;
  if (digests.Length() != n * codec::kDigestLen) {
    throw Napi::TypeError::New(env, "digests must hold 32 bytes per record");
  }
  for (size_t i = 0; i < n; ++i) {
    const double* r = rec.Data() + i * R::kStride;
    if (!Whole(r[R::kIndex], 4294967295.0) || !Whole(r[R::kUncompressedOffset], kSafe) ||
        !Whole(r[R::kCompressedOffset], kSafe) || !Whole(r[R::kUncompressedSize], 4294967295.0) ||
        !Whole(r[R::kCompressedSize], 4294967295.0) ||
        (r[R::kCompressed] != 0 && r[R::kCompressed] != 1)) {
      throw MakeError(env, "ERR_BAD_CHUNK",
                      "layout record " + std::to_string(i) + " is not a valid chunk record");
    }
    cache::LayoutChunk c;
    c.uncompressed_offset = static_cast<uint64_t>(r[R::kUncompressedOffset]);
    c.compressed_offset = static_cast<uint64_t>(r[R::kCompressedOffset]);
    c.uncompressed_size = static_cast<uint32_t>(r[R::kUncompressedSize]);
    c.compressed_size = static_cast<uint32_t>(r[R::kCompressedSize]);
    c.compressed = r[R::kCompressed] == 1;
    const uint8_t* d = digests.Data() + i * codec::kDigestLen;
    std::memcpy(c.digest, d, codec::kDigestLen);
    for (size_t k = 0; k < codec::kDigestLen; ++k) c.has_digest = c.has_digest || d[k] != 0;
    std::string err;
    if (layout->Learn(static_cast<uint32_t>(r[R::kIndex]), c, &err) != 0) {
      throw MakeError(env, "ERR_BAD_CHUNK", err);
    }
  }
}

Napi::Value LayoutRead(const Napi::CallbackInfo& info) {
  auto map = MapArg(info);
  cache::ChunkLayout* layout = LayoutArg(info, *map);
  const int32_t fd = ArgI32(info, 1, "fd");
  const uint32_t index = ArgU32(info, 2, "index");
  auto out = ArgBuffer(info, 3, "out");
  return Napi::Number::New(info.Env(), layout->ReadChunk(fd, index, out.Data(), out.Length()));
}

}  // namespace

void RegisterLayout(Napi::Env env, Napi::Object exports) {
  exports.Set("attachCacheLayout",
              Napi::Function::New(env, AttachCacheLayout, "attachCacheLayout"));
  exports.Set("learnChunks", Napi::Function::New(env, LearnChunks, "learnChunks"));
  exports.Set("layoutRead", Napi::Function::New(env, LayoutRead, "layoutRead"));
}

}  // namespace nydus::binding
