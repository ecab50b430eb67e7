// fill(algo, digester, validate, src, plan, digests, fd, chunkMap, allowSpill[, srcFd, srcPos,
//      srcLen[, speculative]]) -> Promise<Int32Array>
// The cache fill of one fetched range (cache/fill.h RunFill) on the process's fill pool
// (cache/fill_pool.h): decode, digest check, cache-file write or spill, ready bits and the
// wake-up of parked READs all happen off the JavaScript thread. The map's cache layout decides
// the store: plain `.blob.data`, or a compressed/encrypted file (cache/layout_store.h). The plan
// is one abi::FillRecord per chunk; `digests` holds 32 bytes per chunk (read where hasDigest is
// 1); fd -1 skips the cache file (straight to the spill). `src` null: the fill thread reads the
// fetched bytes itself, srcLen bytes at srcPos of srcFd (a local backend's blob file, open until
// the promise settles; cache/fill.h ReadSource). Resolves with [status per chunk..., storeError,
// threadId, sourceError, sourceMicros] (cache/fill.h kFill* / -errno; sourceError: the read of
// srcFd failed and nothing was filled; sourceMicros: how long that read took); rejects only for
// an invalid plan. `speculative` true: nobody waits for these chunks yet (readahead, prefetch),
// so the pool runs on-demand fills before it (cache/fill_pool.h); srcFd..srcLen are then
// passed, and ignored, when `src` is a Buffer.
//
// Completion crosses back through one long-lived queue and loop wake-up per environment
// (loop_wake.h: not a thread-safe function, whose producer wakes the loop while holding the lock
// the loop then needs; never a worker object per fill); it keeps the event loop alive only while
// fills are in flight. At environment teardown (a Worker exiting) the environment waits for the
// fills still running: they read its Buffers and descriptors. Their promises stay pending.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "abi/js_abi.h"
#include "binding.h"
#include "cache/fill.h"
#include "cache/fill_pool.h"
#include "cache/layout_store.h"
#include "codec/codec.h"
#include "loop_wake.h"

namespace nydus::binding {
namespace {

using Plan = abi::FillRecord;

struct FillCall {
  Napi::Reference<Napi::Buffer<uint8_t>> src_ref;  // keeps the fetched bytes alive and unmoved
  int src_fd = -1;                                 // >= 0: read them from here first
  uint64_t src_pos = 0;
  int32_t source_us = 0;  // how long that read took
  Napi::Promise::Deferred deferred;
  cache::FillJob job;
  cache::FillResult result;
};

// Per environment. Owned by the loop wake's callbacks until the wake closes (at teardown) and by
// each fill still running.
struct FillState : std::enable_shared_from_this<FillState> {
  std::shared_ptr<LoopWake> wake;  // set once at registration
  WakeQueue<FillCall*> done;       // finished fills, oldest first
  size_t inflight = 0;             // JS thread: submitted, not yet delivered or dropped
  bool tearing_down = false;       // JS thread: the environment is going; no JavaScript
};

void Resolve(Napi::Env env, FillCall* call) {
  const auto& st = call->result.status;
  auto out = Napi::Int32Array::New(env, st.size() + 4);
  for (size_t i = 0; i < st.size(); ++i) out[i] = st[i];
  out[st.size()] = call->result.store_error;
  out[st.size() + 1] = call->result.thread_id;
  out[st.size() + 2] = call->result.source_error;
  out[st.size() + 3] = call->source_us;
  call->deferred.Resolve(out);
}

// JS thread: settles the finished fills in the order they finished (dropped during teardown: the
// environment is still alive, so deleting their references is fine; nothing can await them).
void Deliver(Napi::Env env, FillState* state, std::vector<FillCall*>& batch) {
  for (FillCall*& c : batch) {
    std::unique_ptr<FillCall> owned(std::exchange(c, nullptr));
    if (!state->tearing_down) state->wake->RunCallback(env, [&] { Resolve(env, owned.get()); });
  }
  state->inflight -= batch.size();
  if (state->inflight != 0) return;
  state->wake->Unref();
  if (state->tearing_down) state->wake->Close();
}

bool Whole(double v, double max) {
  return v >= 0 && v <= max && v == static_cast<double>(static_cast<uint64_t>(v));
}

std::vector<cache::FillChunk> ReadPlan(Napi::Env env, const Napi::Float64Array& plan,
                                       const uint8_t* digests, size_t digests_len) {
  if (plan.ElementLength() % Plan::kStride != 0) {
    throw Napi::TypeError::New(
        env, "plan length must be a multiple of " + std::to_string(Plan::kStride));
  }
  std::vector<cache::FillChunk> chunks(plan.ElementLength() / Plan::kStride);
  const double kSafe = 9007199254740992.0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const double* r = plan.Data() + i * Plan::kStride;
    const bool has_digest = r[Plan::kHasDigest] == 1;
    if (!Whole(r[Plan::kSrcOffset], kSafe) || !Whole(r[Plan::kStoredSize], 4294967295.0) ||
        !Whole(r[Plan::kFileOffset], kSafe) || !Whole(r[Plan::kSize], 4294967295.0) ||
        !Whole(r[Plan::kIndex], 4294967295.0) || !Whole(r[Plan::kCompressedOffset], kSafe) ||
        (r[Plan::kCompressed] != 0 && r[Plan::kCompressed] != 1) ||
        (r[Plan::kHasDigest] != 0 && !has_digest) ||
        (has_digest && digests_len < (i + 1) * codec::kDigestLen)) {
      throw MakeError(env, "ERR_BAD_CHUNK",
                      "fill plan entry " + std::to_string(i) + " is not a valid chunk record");
    }
    cache::FillChunk& c = chunks[i];
    c.src_offset = static_cast<uint64_t>(r[Plan::kSrcOffset]);
    c.src_size = static_cast<uint32_t>(r[Plan::kStoredSize]);
    c.file_offset = static_cast<uint64_t>(r[Plan::kFileOffset]);
    c.size = static_cast<uint32_t>(r[Plan::kSize]);
    c.compressed = r[Plan::kCompressed] == 1;
    c.index = static_cast<uint32_t>(r[Plan::kIndex]);
    c.has_digest = has_digest;
    c.blob_offset = static_cast<uint64_t>(r[Plan::kCompressedOffset]);
    if (has_digest) std::memcpy(c.digest, digests + i * codec::kDigestLen, codec::kDigestLen);
  }
  return chunks;
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* state = static_cast<FillState*>(info.Data());
  const uint32_t a = ArgU32(info, 0, "algo");
  if (a != 0 && a != 1 && a != 3) {
    throw MakeError(env, "ERR_NATIVE_CODEC",
                    "compression algorithm " + std::to_string(a) + " is not handled natively");
  }
  const uint32_t digester = ArgU32(info, 1, "digester");
  if (digester > 1) throw Napi::RangeError::New(env, "digester must be 0 (blake3) or 1 (sha256)");
  const bool validate = info[2].ToBoolean().Value();
  // The fetched bytes, or where the fill thread reads them (a local backend's file).
  const bool from_file = info[3].IsNull();
  Napi::Buffer<uint8_t> src;
  int32_t src_fd = -1;
  uint64_t src_pos = 0;
  size_t src_len = 0;
  if (from_file) {
    src_fd = ArgI32(info, 9, "srcFd");
    if (src_fd < 0) throw Napi::RangeError::New(env, "srcFd must be an open descriptor");
    const double kSafe = 9007199254740991.0;
    if (!info[10].IsNumber() || !Whole(info[10].As<Napi::Number>().DoubleValue(), kSafe)) {
      throw Napi::TypeError::New(env, "srcPos must be a safe non-negative integer");
    }
    if (!info[11].IsNumber() ||
        !Whole(info[11].As<Napi::Number>().DoubleValue(), 256.0 * 1024 * 1024) ||
        info[11].As<Napi::Number>().DoubleValue() == 0) {
      throw Napi::TypeError::New(env, "srcLen must be an integer in [1, 256 MiB]");
    }
    src_pos = static_cast<uint64_t>(info[10].As<Napi::Number>().DoubleValue());
    src_len = static_cast<size_t>(info[11].As<Napi::Number>().DoubleValue());
  } else {
    src = ArgBuffer(info, 3, "src");
    src_len = src.Length();
  }
  if (!info[4].IsTypedArray() ||
      info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(env, "plan must be a Float64Array");
  }
  auto digests = ArgBuffer(info, 5, "digests");
  const int32_t fd = ArgI32(info, 6, "fd");
  auto map = ChunkMapFromValue(info[7]);
  if (map == nullptr) throw Napi::TypeError::New(env, "chunkMap must be a ChunkMap");
  const bool allow_spill = info[8].ToBoolean().Value();
  const auto priority = info.Length() > 12 && info[12].ToBoolean().Value()
                            ? cache::FillPriority::kSpeculative
                            : cache::FillPriority::kOnDemand;

  auto chunks = ReadPlan(env, info[4].As<Napi::Float64Array>(), digests.Data(), digests.Length());
  const std::string bad = cache::ValidatePlan(chunks, src_len);
  if (!bad.empty()) throw MakeError(env, "ERR_BAD_CHUNK", "fill plan: " + bad);
  for (const auto& c : chunks) {
    if (c.index >= map->chunk_count()) {
      throw MakeError(env, "ERR_BAD_CHUNK",
                      "fill plan: chunk index " + std::to_string(c.index) + " out of range");
    }
  }
  auto* call =
      new FillCall{from_file ? Napi::Reference<Napi::Buffer<uint8_t>>() : Napi::Persistent(src),
                   src_fd,
                   src_pos,
                   0,
                   Napi::Promise::Deferred::New(env),
                   {},
                   {}};
  cache::FillJob& job = call->job;
  job.algo = static_cast<codec::Algo>(a);
  job.digester = static_cast<codec::DigestAlgo>(digester);
  job.validate = validate;
  job.src = from_file ? nullptr : src.Data();
  job.src_len = src_len;
  job.chunks = std::move(chunks);
  job.map = std::move(map);
  // The cache file's layout (compressed or encrypted) when one is attached to the map.
  if (cache::ChunkLayout* layout = job.map->layout()) {
    // Hits are checked against the digest there, so the fill checks them too: a chunk that
    // fails it is never stored (it would fail every READ afterwards).
    job.validate = job.validate || layout->options().verify;
    if (fd >= 0) job.store = std::make_unique<cache::LayoutStore>(*layout, fd);
  } else if (fd >= 0) {
    job.store = std::make_unique<cache::DataFileStore>(fd);
  }
  job.allow_spill = allow_spill;
  Napi::Promise promise = call->deferred.Promise();
  if (state->inflight++ == 0) state->wake->Ref();
  auto task = [state = state->shared_from_this(), call] {
    std::unique_ptr<uint8_t[]> own;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc =
        call->src_fd < 0 ? 0 : cache::ReadSource(&call->job, call->src_fd, call->src_pos, &own);
    call->source_us = static_cast<int32_t>(std::min<int64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count(),
        INT32_MAX));
    if (rc == 0) {
      call->result = cache::RunFill(call->job);
    } else {
      call->result.status.assign(call->job.chunks.size(), rc);
      call->result.source_error = rc;
    }
    state->done.Push(call, state->wake.get());
  };
  cache::FillPool::Shared().Submit(std::move(task), priority);
  return promise;
}

}  // namespace

void RegisterFill(Napi::Env env, Napi::Object exports) {
  auto state = std::make_shared<FillState>();
  // The callbacks own the state until the wake closes (a cycle the close breaks).
  state->wake = LoopWake::Create(
      env, "nydus-fill", [state](Napi::Env e) { Deliver(e, state.get(), state->done.TakeAll()); },
      [state, env] {
        // Fills still running keep the environment waiting until they are delivered (dropped).
        state->tearing_down = true;
        Deliver(env, state.get(), state->done.TakeAll());
      });
  exports.Set("fill", Napi::Function::New(env, Fill, "fill", state.get()));
}

}  // namespace nydus::binding
