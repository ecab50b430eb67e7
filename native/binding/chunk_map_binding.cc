// JS handle of a persistent chunk map (cache/chunk_map.h). The cache-fill path in TypeScript
// sets bits after writing chunk data; the native READ fast path reads the same mapping.
#include <memory>

#include "binding.h"
#include "cache/chunk_map.h"

namespace nydus::binding {
namespace {

// Marks ChunkMap handles so ChunkMapFromValue can tell them from any other wrapped object.
constexpr napi_type_tag kChunkMapTag = {0x6e7964757363686bULL, 0x6d61702d68616e64ULL};

class ChunkMapWrap : public Napi::ObjectWrap<ChunkMapWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ChunkMap",
                       {InstanceMethod<&ChunkMapWrap::IsReady>("isReady"),
                        InstanceMethod<&ChunkMapWrap::RangeReady>("rangeReady"),
                        InstanceMethod<&ChunkMapWrap::SetReady>("setReady"),
                        InstanceMethod<&ChunkMapWrap::ReadyCount>("readyCount"),
                        InstanceMethod<&ChunkMapWrap::AllReady>("allReady"),
                        InstanceMethod<&ChunkMapWrap::Close>("close"),
                        InstanceAccessor<&ChunkMapWrap::Count>("chunkCount")});
  }

  // new ChunkMap(path, chunkCount)
  explicit ChunkMapWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChunkMapWrap>(info) {
    std::string path = ArgString(info, 0, "path");
    uint32_t count = ArgU32(info, 1, "chunkCount");
    map_ = std::make_shared<cache::ChunkMap>();
    std::string err;
    int rc = map_->Open(path, count, &err);
    if (rc != 0) throw MakeError(info.Env(), "ERR_CHUNK_MAP", err, rc);
    info.This().As<Napi::Object>().TypeTag(&kChunkMapTag);
  }

  // The shared core object, for native consumers (the READ fast path) that outlive this handle.
  std::shared_ptr<cache::ChunkMap> core() const { return map_; }

 private:
  std::shared_ptr<cache::ChunkMap> map_;

  Napi::Value IsReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), map_->IsReady(ArgU32(info, 0, "index")));
  }
  Napi::Value RangeReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(),
                              map_->RangeReady(ArgU32(info, 0, "first"), ArgU32(info, 1, "count")));
  }
  Napi::Value SetReady(const Napi::CallbackInfo& info) {
    uint32_t index = ArgU32(info, 0, "index");
    if (index >= map_->chunk_count()) {
      throw Napi::RangeError::New(info.Env(), "chunk index " + std::to_string(index) +
                                                  " out of range (" +
                                                  std::to_string(map_->chunk_count()) + ")");
    }
    return Napi::Boolean::New(info.Env(), map_->SetReady(index));
  }
  Napi::Value ReadyCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), map_->ReadyCount());
  }
  Napi::Value AllReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), map_->AllReady());
  }
  // Drops this handle's reference; the mapping stays valid for native readers that still hold it.
  void Close(const Napi::CallbackInfo&) { map_ = std::make_shared<cache::ChunkMap>(); }
  Napi::Value Count(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), map_->chunk_count());
  }
};

}  // namespace

std::shared_ptr<cache::ChunkMap> ChunkMapFromValue(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kChunkMapTag)) return nullptr;
  return ChunkMapWrap::Unwrap(value.As<Napi::Object>())->core();
}

void RegisterChunkMap(Napi::Env env, Napi::Object exports) {
  exports.Set("ChunkMap", ChunkMapWrap::Define(env));
}

}  // namespace nydus::binding
