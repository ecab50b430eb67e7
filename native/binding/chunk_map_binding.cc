// JS handle of a persistent chunk map (cache/chunk_map.h). The cache-fill path in TypeScript
// sets bits after writing chunk data; the native READ fast path reads the same mapping.
#include <cerrno>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "binding.h"
#include "cache/chunk_map.h"
#include "cache/data_extents.h"

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
                        InstanceMethod<&ChunkMapWrap::Share>("share"),
                        InstanceMethod<&ChunkMapWrap::ClearReady>("clearReady"),
                        InstanceMethod<&ChunkMapWrap::ReadyIndexes>("readyIndexes"),
                        InstanceMethod<&ChunkMapWrap::SpillFd>("spillFd"),
                        InstanceMethod<&ChunkMapWrap::SpillReady>("spillReady"),
                        InstanceMethod<&ChunkMapWrap::SetSpillReady>("setSpillReady"),
                        InstanceMethod<&ChunkMapWrap::EvictSpill>("evictSpill"),
                        InstanceAccessor<&ChunkMapWrap::Count>("chunkCount"),
                        InstanceAccessor<&ChunkMapWrap::Exclusive>("exclusive"),
                        InstanceAccessor<&ChunkMapWrap::Repaired>("repaired")});
  }

  // new ChunkMap(path, chunkCount, repair = false)
  explicit ChunkMapWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChunkMapWrap>(info) {
    std::string path = ArgString(info, 0, "path");
    uint32_t count = ArgU32(info, 1, "chunkCount");
    cache::ChunkMap::OpenOptions opts;
    opts.repair = info.Length() > 2 && info[2].ToBoolean().Value();
    map_ = std::make_shared<cache::ChunkMap>();
    std::string err;
    int rc = map_->Open(path, count, opts, &open_info_, &err);
    if (rc != 0) throw MakeError(info.Env(), "ERR_CHUNK_MAP", err, rc);
    info.This().As<Napi::Object>().TypeTag(&kChunkMapTag);
  }

  // The shared core object, for native consumers (the READ fast path) that outlive this handle.
  std::shared_ptr<cache::ChunkMap> core() const { return map_; }

 private:
  std::shared_ptr<cache::ChunkMap> map_;
  cache::ChunkMap::OpenInfo open_info_;

  uint32_t Index(const Napi::CallbackInfo& info) {
    uint32_t index = ArgU32(info, 0, "index");
    if (index >= map_->chunk_count()) {
      throw Napi::RangeError::New(info.Env(), "chunk index " + std::to_string(index) +
                                                  " out of range (" +
                                                  std::to_string(map_->chunk_count()) + ")");
    }
    return index;
  }

  Napi::Value IsReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), map_->IsReady(ArgU32(info, 0, "index")));
  }
  Napi::Value RangeReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(),
                              map_->RangeReady(ArgU32(info, 0, "first"), ArgU32(info, 1, "count")));
  }
  Napi::Value SetReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), map_->SetReady(Index(info)));
  }
  Napi::Value ClearReady(const Napi::CallbackInfo& info) {
    if (!open_info_.exclusive) {
      throw MakeError(info.Env(), "ERR_CHUNK_MAP", "clearReady needs the map opened exclusively");
    }
    return Napi::Boolean::New(info.Env(), map_->ClearReady(Index(info)));
  }
  Napi::Value Share(const Napi::CallbackInfo& info) {
    int rc = map_->Share();
    if (rc != 0)
      throw MakeError(info.Env(), "ERR_CHUNK_MAP", "cannot share the chunk map lock", rc);
    open_info_.exclusive = false;
    return info.Env().Undefined();
  }
  Napi::Value ReadyIndexes(const Napi::CallbackInfo& info) {
    std::vector<uint32_t> ready;
    for (uint32_t i = 0; i < map_->chunk_count(); ++i) {
      if (map_->IsReady(i)) ready.push_back(i);
    }
    auto out = Napi::Uint32Array::New(info.Env(), ready.size());
    for (size_t i = 0; i < ready.size(); ++i) out[i] = ready[i];
    return out;
  }
  Napi::Value SpillFd(const Napi::CallbackInfo& info) {
    std::string err;
    cache::Spill* s = map_->EnsureSpill(&err);
    if (s == nullptr) throw MakeError(info.Env(), "ERR_CHUNK_MAP", err, EIO);
    return Napi::Number::New(info.Env(), s->fd());
  }
  Napi::Value SpillReady(const Napi::CallbackInfo& info) {
    cache::Spill* s = map_->spill();
    return Napi::Boolean::New(info.Env(), s != nullptr && s->IsReady(ArgU32(info, 0, "index")));
  }
  Napi::Value SetSpillReady(const Napi::CallbackInfo& info) {
    uint32_t index = Index(info);
    cache::Spill* s = map_->spill();
    if (s == nullptr)
      throw MakeError(info.Env(), "ERR_CHUNK_MAP", "no spill file (call spillFd first)");
    return Napi::Boolean::New(info.Env(), s->SetReady(index));
  }
  // evictSpill(index, offset, size)
  Napi::Value EvictSpill(const Napi::CallbackInfo& info) {
    uint32_t index = Index(info);
    double off = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    double size = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
    if (!(off >= 0 && size >= 0 && off + size <= 9007199254740991.0) || std::floor(off) != off ||
        std::floor(size) != size) {
      throw Napi::TypeError::New(info.Env(), "offset and size must be non-negative integers");
    }
    if (cache::Spill* s = map_->spill(); s != nullptr) {
      s->Evict(index, static_cast<uint64_t>(off), static_cast<uint64_t>(size));
    }
    return info.Env().Undefined();
  }
  Napi::Value Exclusive(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), open_info_.exclusive);
  }
  Napi::Value Repaired(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), open_info_.repaired);
  }
  Napi::Value ReadyCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), map_->ReadyCount());
  }
  Napi::Value AllReady(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), map_->AllReady());
  }
  // Drops this handle's reference; the mapping stays valid for native readers that still hold it.
  void Close(const Napi::CallbackInfo&) {
    map_ = std::make_shared<cache::ChunkMap>();
    open_info_ = {};
  }
  Napi::Value Count(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), map_->chunk_count());
  }
};

}  // namespace

std::shared_ptr<cache::ChunkMap> ChunkMapFromValue(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kChunkMapTag)) return nullptr;
  return ChunkMapWrap::Unwrap(value.As<Napi::Object>())->core();
}

// dataExtents(fd): Float64Array of [start, end) pairs where the file has data.
static Napi::Value DataExtents(const Napi::CallbackInfo& info) {
  int fd = ArgI32(info, 0, "fd");
  std::vector<std::pair<uint64_t, uint64_t>> ext;
  int rc = cache::DataExtents(fd, &ext);
  if (rc != 0)
    throw MakeError(info.Env(), "ERR_CACHE_FILE", "cannot list the data of a cache file", rc);
  auto out = Napi::Float64Array::New(info.Env(), ext.size() * 2);
  for (size_t i = 0; i < ext.size(); ++i) {
    out[2 * i] = static_cast<double>(ext[i].first);
    out[2 * i + 1] = static_cast<double>(ext[i].second);
  }
  return out;
}

void RegisterChunkMap(Napi::Env env, Napi::Object exports) {
  exports.Set("ChunkMap", ChunkMapWrap::Define(env));
  exports.Set("dataExtents", Napi::Function::New<DataExtents>(env, "dataExtents"));
}

}  // namespace nydus::binding
