// decodeWrite(algo, src, plan, fd) -> Promise<Int32Array>: the cache fill of one fetched range
// (cache/fill.h) on a libuv worker thread, so decompression and the cache-file write leave the
// JavaScript thread free and several fills run at once. The plan is one abi::FillRecord per
// chunk (abi/js_abi.h): src offset, stored size, file offset, uncompressed size, compressed
// (0/1). Resolves with one
// status per chunk (0; -EBADMSG: did not decode; else -errno of the write); rejects only for an
// invalid plan.
#include <string>
#include <vector>

#include "abi/js_abi.h"
#include "binding.h"
#include "cache/fill.h"
#include "codec/codec.h"

namespace nydus::binding {
namespace {

using Plan = abi::FillRecord;

class FillWorker : public Napi::AsyncWorker {
 public:
  FillWorker(Napi::Env env, codec::Algo algo, Napi::Buffer<uint8_t> src,
             std::vector<cache::FillChunk> plan, int fd)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        algo_(algo),
        // The reference keeps the source bytes alive (and unmoved) until OnOK/OnError.
        src_ref_(Napi::Persistent(src)),
        src_(src.Data()),
        src_len_(src.Length()),
        plan_(std::move(plan)),
        fd_(fd) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { status_ = cache::DecodeAndWrite(algo_, src_, src_len_, plan_, fd_); }
  void OnOK() override {
    Napi::Env env = Env();
    auto out = Napi::Int32Array::New(env, status_.size());
    for (size_t i = 0; i < status_.size(); ++i) out[i] = status_[i];
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  codec::Algo algo_;
  Napi::Reference<Napi::Buffer<uint8_t>> src_ref_;
  const uint8_t* src_;
  size_t src_len_;
  std::vector<cache::FillChunk> plan_;
  int fd_;
  std::vector<int> status_;
};

bool Whole(double v, double max) {
  return v >= 0 && v <= max && v == static_cast<double>(static_cast<uint64_t>(v));
}

Napi::Value DecodeWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t a = ArgU32(info, 0, "algo");
  if (a != 0 && a != 1 && a != 3) {
    throw MakeError(env, "ERR_NATIVE_CODEC",
                    "compression algorithm " + std::to_string(a) + " is not handled natively");
  }
  auto src = ArgBuffer(info, 1, "src");
  if (!info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(env, "plan must be a Float64Array");
  }
  auto plan = info[2].As<Napi::Float64Array>();
  const int32_t fd = ArgI32(info, 3, "fd");
  if (fd < 0) throw Napi::TypeError::New(env, "fd must be an open file descriptor");
  if (plan.ElementLength() % Plan::kStride != 0) {
    throw Napi::TypeError::New(
        env, "plan length must be a multiple of " + std::to_string(Plan::kStride));
  }
  std::vector<cache::FillChunk> chunks(plan.ElementLength() / Plan::kStride);
  const double kSafe = 9007199254740992.0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const double* r = plan.Data() + i * Plan::kStride;
    if (!Whole(r[Plan::kSrcOffset], kSafe) || !Whole(r[Plan::kStoredSize], 4294967295.0) ||
        !Whole(r[Plan::kFileOffset], kSafe) || !Whole(r[Plan::kSize], 4294967295.0) ||
        (r[Plan::kCompressed] != 0 && r[Plan::kCompressed] != 1)) {
      throw MakeError(env, "ERR_BAD_CHUNK",
                      "fill plan entry " + std::to_string(i) + " is not a valid chunk record");
    }
    chunks[i] = {static_cast<uint64_t>(r[Plan::kSrcOffset]),
                 static_cast<uint32_t>(r[Plan::kStoredSize]),
                 static_cast<uint64_t>(r[Plan::kFileOffset]), static_cast<uint32_t>(r[Plan::kSize]),
                 r[Plan::kCompressed] == 1};
  }
  const std::string bad = cache::ValidatePlan(chunks, src.Length());
  if (!bad.empty()) throw MakeError(env, "ERR_BAD_CHUNK", "fill plan: " + bad);
  auto* w = new FillWorker(env, static_cast<codec::Algo>(a), src, std::move(chunks), fd);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterFill(Napi::Env env, Napi::Object exports) {
  exports.Set("decodeWrite", Napi::Function::New(env, DecodeWrite, "decodeWrite"));
}

}  // namespace nydus::binding
