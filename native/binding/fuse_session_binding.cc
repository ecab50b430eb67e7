// JS handle of a FUSE session (fuse/session.h): one FUSE connection served by a TypeScript
// filesystem handler, attached to one transport (a /dev/fuse mount, a vhost-user virtio-fs
// socket, or the in-memory loopback tests use). JS validates arguments before they cross
// (src/fuse/session.ts); this file checks types and ranges again and turns core error
// codes into NativeErrors with stable codes.
//
// The reply scratch (a Float64Array and a Uint8Array the JS side fills before each reply call)
// is lent once at construction, so a reply costs one call and no object property reads.
#include <cstring>
#include <memory>
#include <shared_mutex>
#include <string>

#include "abi/js_abi.h"
#include "abi_binding.h"
#include "binding.h"
#include "blob_wake.h"
#include "common/log.h"
#include "fuse/session.h"
#include "fuse/upcall.h"
#include "fuse_bridge.h"
#include "fusedev/fuse_dev.h"
#include "fusedev/mount.h"
#include "fusedev/notify.h"
#include "passthrough/passthrough_fs.h"
#include "passthrough/pt_native.h"
#include "readpath/extent_table.h"
#include "vhost/backend.h"

namespace nydus::binding {
namespace {

constexpr const char* kLog = "fuse-binding";
constexpr double kMaxSafe = 9007199254740991.0;

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= kMaxSafe) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer in [0, 2^53)");
  }
  return static_cast<uint64_t>(d);
}

bool OptBool(Napi::Object o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt;
}

std::string OptString(Napi::Object o, const char* key, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt;
}

// A request injected from JS (tests, and daemon unit tests without a kernel): the bytes of one
// FUSE request in, up to out_cap bytes of reply back through the dispatcher.
class LoopbackRequest final : public transport::FuseRequest {
 public:
  LoopbackRequest(FuseBridge* bridge, uint32_t id, const uint8_t* in, size_t in_len, size_t out_cap)
      : transport::FuseRequest(transport::TransportKind::kVirtio),
        bridge_(bridge),
        id_(id),
        in_buf_(in, in + in_len),
        out_buf_(out_cap) {
    in_slice_ = {in_buf_.data(), in_buf_.size()};
    out_slice_ = {out_buf_.data(), out_buf_.size()};
    in_ = std::span<const transport::IoSlice>(&in_slice_, in_len > 0 ? 1 : 0);
    out_ = std::span<const transport::IoSlice>(&out_slice_, out_cap > 0 ? 1 : 0);
    in_bytes_ = in_len;
    out_bytes_ = out_cap;
  }
  ~LoopbackRequest() override = default;

  void Complete(uint32_t written) override {
    out_buf_.resize(written <= out_buf_.size() ? written : out_buf_.size());
    bridge_->PushLoopback(id_, std::move(out_buf_));
    delete this;
  }

 private:
  FuseBridge* bridge_;
  uint32_t id_;
  std::vector<uint8_t> in_buf_;
  std::vector<uint8_t> out_buf_;
  transport::IoSlice in_slice_{};
  transport::IoSlice out_slice_{};
};

class FuseSessionWrap : public Napi::ObjectWrap<FuseSessionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FuseSession",
                       {InstanceMethod<&FuseSessionWrap::ReplyError>("replyError"),
                        InstanceMethod<&FuseSessionWrap::ReplyOk>("replyOk"),
                        InstanceMethod<&FuseSessionWrap::ReplyEntry>("replyEntry"),
                        InstanceMethod<&FuseSessionWrap::ReplyAttr>("replyAttr"),
                        InstanceMethod<&FuseSessionWrap::ReplyOpen>("replyOpen"),
                        InstanceMethod<&FuseSessionWrap::ReplyStatfs>("replyStatfs"),
                        InstanceMethod<&FuseSessionWrap::ReplyData>("replyData"),
                        InstanceMethod<&FuseSessionWrap::ReplyXattr>("replyXattr"),
                        InstanceMethod<&FuseSessionWrap::ReplyReaddir>("replyReaddir"),
                        InstanceMethod<&FuseSessionWrap::ReplyLseek>("replyLseek"),
                        InstanceMethod<&FuseSessionWrap::ReplyCreate>("replyCreate"),
                        InstanceMethod<&FuseSessionWrap::ReplyWrite>("replyWrite"),
                        InstanceMethod<&FuseSessionWrap::SetWritable>("setWritable"),
                        InstanceMethod<&FuseSessionWrap::ResolveMiss>("resolveMiss"),
                        InstanceMethod<&FuseSessionWrap::SetExtents>("setExtents"),
                        InstanceMethod<&FuseSessionWrap::RemoveExtents>("removeExtents"),
                        InstanceMethod<&FuseSessionWrap::RegisterBlob>("registerBlob"),
                        InstanceMethod<&FuseSessionWrap::UnregisterBlob>("unregisterBlob"),
                        InstanceMethod<&FuseSessionWrap::ChunksReady>("chunksReady"),
                        InstanceMethod<&FuseSessionWrap::InvalidateNodes>("invalidateNodes"),
                        InstanceMethod<&FuseSessionWrap::FailParked>("failParked"),
                        InstanceMethod<&FuseSessionWrap::NotifyInvalEntry>("notifyInvalEntry"),
                        InstanceMethod<&FuseSessionWrap::NotifyInvalInode>("notifyInvalInode"),
                        InstanceMethod<&FuseSessionWrap::SetFopSlots>("setFopSlots"),
                        InstanceMethod<&FuseSessionWrap::FopStats>("fopStats"),
                        InstanceMethod<&FuseSessionWrap::AttachPassthrough>("attachPassthrough"),
                        InstanceMethod<&FuseSessionWrap::DetachPassthrough>("detachPassthrough"),
                        InstanceMethod<&FuseSessionWrap::PassthroughRoot>("passthroughRoot"),
                        InstanceMethod<&FuseSessionWrap::Mount>("mount"),
                        InstanceMethod<&FuseSessionWrap::AttachVirtio>("attachVirtio"),
                        InstanceMethod<&FuseSessionWrap::AttachLoopback>("attachLoopback"),
                        InstanceMethod<&FuseSessionWrap::Inject>("inject"),
                        InstanceMethod<&FuseSessionWrap::Stats>("stats"),
                        InstanceMethod<&FuseSessionWrap::Stop>("stop")});
  }

  // new FuseSession(dispatch, handlerOps, upcallRecords, upcallBytes, replyNumbers, replyBytes
  //                 [, flags])
  explicit FuseSessionWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FuseSessionWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "dispatch must be a function");
    if (!info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsTypedArray() ||
        !info[4].IsTypedArray() || !info[5].IsTypedArray()) {
      throw Napi::TypeError::New(env, "handlerOps, arenas and reply scratch must be typed arrays");
    }
    auto ops = info[1].As<Napi::Uint8Array>();
    auto records = info[2].As<Napi::Float64Array>();
    auto bytes = info[3].As<Napi::Uint8Array>();
    auto nums = info[4].As<Napi::Float64Array>();
    auto rbytes = info[5].As<Napi::Uint8Array>();
    if (ops.TypedArrayType() != napi_uint8_array ||
        records.TypedArrayType() != napi_float64_array ||
        bytes.TypedArrayType() != napi_uint8_array || nums.TypedArrayType() != napi_float64_array ||
        rbytes.TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "wrong typed array kinds");
    }
    if (records.ElementLength() < abi::kMinUpcallRecords * abi::UpcallRecord::kStride ||
        bytes.ByteLength() < abi::kMinUpcallBytes ||
        nums.ElementLength() < abi::DirentRecord::kStride) {
      throw Napi::RangeError::New(env, "upcall arena or reply scratch too small");
    }
    fuse::SessionOptions opts;
    for (size_t op = 0; op < fuse::kOpcodeTableSize && op < ops.ElementLength(); ++op) {
      if (ops[op] != 0) opts.handler_ops.set(op);
    }
    // Optional 7th argument: session flags (abi::kSessionImmutable: see SessionOptions).
    if (info.Length() > 6 && info[6].IsNumber()) {
      opts.immutable = (info[6].As<Napi::Number>().Uint32Value() & abi::kSessionImmutable) != 0;
    }
    bridge_ = FuseBridge::Create(env, info[0].As<Napi::Function>(), records, bytes);
    session_ = std::make_shared<fuse::FuseSession>(opts, bridge_);
    bridge_->set_session(session_);
    wakers_ = std::make_unique<BlobWakers>(session_);
    nums_ref_ = Napi::Persistent(nums);
    rbytes_ref_ = Napi::Persistent(rbytes);
    nums_ = nums.Data();
    nums_len_ = nums.ElementLength();
    rbytes_ = rbytes.Data();
    rbytes_len_ = rbytes.ByteLength();
    napi_add_env_cleanup_hook(env, &FuseSessionWrap::CleanupHook, this);
    hooked_ = true;
  }

  ~FuseSessionWrap() override { StopAll(); }

 private:
  static void CleanupHook(void* arg) {
    auto* self = static_cast<FuseSessionWrap*>(arg);
    self->hooked_ = false;  // running now: must not be removed again
    self->StopAll();
  }

  // Stops the transport (joining its threads, closing /dev/fuse fds), unmounts, fails whatever
  // is still pending, and releases the bridge. Safe from the finalizer and the env cleanup hook.
  void StopAll() {
    if (stopped_) return;
    stopped_ = true;
    if (fusedev_ != nullptr) fusedev_->Stop();
    if (vhost_ != nullptr) vhost_->Stop();
    if (!mountpoint_.empty()) {
      std::string err;
      if (fusedev::Unmount(mountpoint_, via_fusermount_, &err) != 0) {
        NLOG_ERROR(kLog, "unmounting %s failed: %s", mountpoint_.c_str(), err.c_str());
      }
      mountpoint_.clear();
    }
    if (session_ != nullptr) {
      wakers_->DetachAll();
      std::lock_guard lock(wakers_->mu());
      session_->Shutdown();
    }
    if (bridge_ != nullptr) bridge_->Release();
    if (hooked_) {
      napi_remove_env_cleanup_hook(Env(), &FuseSessionWrap::CleanupHook, this);
      hooked_ = false;
    }
  }

  void RequireOpen(Napi::Env env) {
    if (stopped_) throw MakeError(env, "ERR_FUSE_STOPPED", "the FUSE session is stopped");
  }
  void RequireNoTransport(Napi::Env env) {
    RequireOpen(env);
    if (transport_attached_) {
      throw MakeError(env, "ERR_FUSE_TRANSPORT",
                      "the FUSE session already has a transport (one connection per session)");
    }
  }

  Napi::Value Num(Napi::Env env, long v) { return Napi::Number::New(env, static_cast<double>(v)); }

  Napi::Value ReplyError(const Napi::CallbackInfo& info) {
    return Num(info.Env(),
               session_->ReplyError(ArgU64(info, 0, "token"), ArgI32(info, 1, "errno")));
  }
  Napi::Value ReplyOk(const Napi::CallbackInfo& info) {
    return Num(info.Env(), session_->ReplyOk(ArgU64(info, 0, "token")));
  }
  Napi::Value ReplyEntry(const Napi::CallbackInfo& info) {
    return Num(info.Env(), session_->ReplyEntry(ArgU64(info, 0, "token"), nums_));
  }
  Napi::Value ReplyAttr(const Napi::CallbackInfo& info) {
    return Num(info.Env(), session_->ReplyAttr(ArgU64(info, 0, "token"), nums_));
  }
  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info) {
    return Num(info.Env(), session_->ReplyStatfs(ArgU64(info, 0, "token"), nums_));
  }

  // replyOpen(token, fh, openFlags, extents: Float64Array | null, fileSize, extentCount)
  Napi::Value ReplyOpen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t token = ArgU64(info, 0, "token");
    uint64_t fh = ArgU64(info, 1, "fh");
    uint32_t flags = ArgU32(info, 2, "openFlags");
    std::shared_ptr<const readpath::ExtentTable> table;
    if (info[3].IsTypedArray()) {
      std::string err;
      table = BuildTable(info, 3, &err);
      if (table == nullptr) {
        NLOG_ERROR(kLog, "OPEN answered with an invalid extent table: %s", err.c_str());
        return Num(env, session_->ReplyError(token, EIO) == 0 ? -EINVAL : -ESTALE);
      }
    }
    return Num(env, session_->ReplyOpen(token, fh, flags, std::move(table)));
  }

  std::shared_ptr<const readpath::ExtentTable> BuildTable(const Napi::CallbackInfo& info, size_t at,
                                                          std::string* err) {
    auto arr = info[at].As<Napi::TypedArray>();
    if (arr.TypedArrayType() != napi_float64_array) {
      *err = "extents must be a Float64Array";
      return nullptr;
    }
    auto f64 = arr.As<Napi::Float64Array>();
    uint64_t file_size = ArgU64(info, at + 1, "fileSize");
    uint32_t count = ArgU32(info, at + 2, "extentCount");
    if (static_cast<size_t>(count) * abi::ExtentRecord::kStride > f64.ElementLength()) {
      *err = "extentCount exceeds the array";
      return nullptr;
    }
    return readpath::ExtentTable::FromValues(file_size, f64.Data(), count, err);
  }

  // replyData(token, data: Uint8Array) — READ or READLINK
  Napi::Value ReplyData(const Napi::CallbackInfo& info) {
    uint64_t token = ArgU64(info, 0, "token");
    if (!info[1].IsTypedArray())
      throw Napi::TypeError::New(info.Env(), "data must be a Uint8Array");
    auto a = info[1].As<Napi::Uint8Array>();
    return Num(info.Env(), session_->ReplyData(token, a.Data(), a.ByteLength()));
  }
  Napi::Value ReplyXattr(const Napi::CallbackInfo& info) {
    uint64_t token = ArgU64(info, 0, "token");
    if (!info[1].IsTypedArray())
      throw Napi::TypeError::New(info.Env(), "data must be a Uint8Array");
    auto a = info[1].As<Napi::Uint8Array>();
    return Num(info.Env(), session_->ReplyXattr(token, a.Data(), a.ByteLength()));
  }
  // replyReaddir(token, count, namesLength): records and names from the reply scratch.
  Napi::Value ReplyReaddir(const Napi::CallbackInfo& info) {
    uint64_t token = ArgU64(info, 0, "token");
    uint32_t count = ArgU32(info, 1, "count");
    uint32_t names = ArgU32(info, 2, "namesLength");
    if (static_cast<size_t>(count) * abi::DirentRecord::kStride > nums_len_ ||
        names > rbytes_len_) {
      throw Napi::RangeError::New(info.Env(), "readdir reply exceeds the scratch");
    }
    return Num(info.Env(), session_->ReplyReaddir(token, nums_, count, rbytes_, names));
  }
  Napi::Value ReplyLseek(const Napi::CallbackInfo& info) {
    return Num(info.Env(),
               session_->ReplyLseek(ArgU64(info, 0, "token"), ArgU64(info, 1, "offset")));
  }
  // replyCreate(token, fh, openFlags): the entry record from the reply scratch.
  Napi::Value ReplyCreate(const Napi::CallbackInfo& info) {
    return Num(info.Env(),
               session_->ReplyCreate(ArgU64(info, 0, "token"), nums_, ArgU64(info, 1, "fh"),
                                     ArgU32(info, 2, "openFlags")));
  }
  Napi::Value ReplyWrite(const Napi::CallbackInfo& info) {
    return Num(info.Env(), session_->ReplyWrite(ArgU64(info, 0, "token"), ArgU64(info, 1, "size")));
  }
  // setWritable(lo, hi, on)
  void SetWritable(const Napi::CallbackInfo& info) {
    if (!info[2].IsBoolean()) throw Napi::TypeError::New(info.Env(), "on must be a boolean");
    session_->SetWritable(ArgU64(info, 0, "lo"), ArgU64(info, 1, "hi"),
                          info[2].As<Napi::Boolean>().Value());
  }
  Napi::Value ResolveMiss(const Napi::CallbackInfo& info) {
    return Num(info.Env(),
               session_->ResolveMiss(ArgU64(info, 0, "token"), ArgI32(info, 1, "errno")));
  }

  // setExtents(fh, extents: Float64Array, fileSize, count)
  void SetExtents(const Napi::CallbackInfo& info) {
    RequireOpen(info.Env());
    uint64_t fh = ArgU64(info, 0, "fh");
    if (!info[1].IsTypedArray())
      throw Napi::TypeError::New(info.Env(), "extents must be a Float64Array");
    std::string err;
    auto table = BuildTable(info, 1, &err);
    if (table == nullptr)
      throw MakeError(info.Env(), "ERR_FUSE_EXTENTS", "invalid extent table: " + err);
    session_->SetExtents(fh, std::move(table));
  }
  Napi::Value RemoveExtents(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), session_->RemoveExtents(ArgU64(info, 0, "fh")));
  }

  // registerBlob(slot, dataPath, chunkMap | null)
  void RegisterBlob(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    uint32_t slot = ArgU32(info, 0, "slot");
    std::string path = ArgString(info, 1, "dataPath");
    std::shared_ptr<cache::ChunkMap> map;
    if (!info[2].IsNull() && !info[2].IsUndefined()) {
      map = ChunkMapFromValue(info[2]);
      if (map == nullptr) throw Napi::TypeError::New(env, "chunkMap must be a ChunkMap or null");
      if (map->chunk_count() == 0) throw MakeError(env, "ERR_FUSE_BLOB", "the chunk map is closed");
    }
    std::string err;
    int rc = session_->blobs().Register(slot, path, map, &err);
    if (rc != 0) throw MakeError(env, "ERR_FUSE_BLOB", err, rc);
    // Fills of this blob wake its parked READs themselves (blob_wake.h).
    wakers_->Attach(slot, map);
  }
  void UnregisterBlob(const Napi::CallbackInfo& info) {
    const uint32_t slot = ArgU32(info, 0, "slot");
    wakers_->Detach(slot);
    session_->blobs().Unregister(slot);
  }
  // chunksReady(slot, indices: Uint32Array) -> READs woken
  Napi::Value ChunksReady(const Napi::CallbackInfo& info) {
    uint32_t slot = ArgU32(info, 0, "slot");
    if (!info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      throw Napi::TypeError::New(info.Env(), "indices must be a Uint32Array");
    }
    auto a = info[1].As<Napi::Uint32Array>();
    std::shared_lock lock(wakers_->mu());
    size_t n = session_->ChunksReady(slot, std::span<const uint32_t>(a.Data(), a.ElementLength()));
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  // invalidateNodes(lo, hi, blobSlots: Uint32Array) -> extent tables dropped
  Napi::Value InvalidateNodes(const Napi::CallbackInfo& info) {
    uint64_t lo = ArgU64(info, 0, "lo");
    uint64_t hi = ArgU64(info, 1, "hi");
    if (!info[2].IsTypedArray() ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      throw Napi::TypeError::New(info.Env(), "blobSlots must be a Uint32Array");
    }
    auto a = info[2].As<Napi::Uint32Array>();
    size_t n =
        session_->InvalidateNodes(lo, hi, std::span<const uint32_t>(a.Data(), a.ElementLength()));
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }
  // failParked(lo, hi, errno) -> READs failed
  Napi::Value FailParked(const Napi::CallbackInfo& info) {
    const uint64_t lo = ArgU64(info, 0, "lo");
    const uint64_t hi = ArgU64(info, 1, "hi");
    const int32_t err = ArgI32(info, 2, "errno");
    std::lock_guard lock(wakers_->mu());
    size_t n = session_->FailParked(lo, hi, err);
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  // notifyInvalEntry(parent, name: Uint8Array) -> true when a notification is on its way (a
  // /dev/fuse mount only; written on a thread of its own, fusedev/notify.h).
  Napi::Value NotifyInvalEntry(const Napi::CallbackInfo& info) {
    uint64_t parent = ArgU64(info, 0, "parent");
    if (!info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "name must be bytes");
    auto a = info[1].As<Napi::Uint8Array>();
    auto msg = fusedev::InvalEntryMessage(
        parent, std::string_view(reinterpret_cast<const char*>(a.Data()), a.ByteLength()));
    if (msg.empty()) throw Napi::RangeError::New(info.Env(), "name must be 1..255 bytes");
    return Napi::Boolean::New(info.Env(), SendNotify(std::move(msg), "inval_entry"));
  }
  // notifyInvalInode(ino, offset, length) -> as notifyInvalEntry
  Napi::Value NotifyInvalInode(const Napi::CallbackInfo& info) {
    auto msg = fusedev::InvalInodeMessage(ArgU64(info, 0, "ino"), ArgI32(info, 1, "offset"),
                                          ArgI32(info, 2, "length"));
    return Napi::Boolean::New(info.Env(), SendNotify(std::move(msg), "inval_inode"));
  }
  bool SendNotify(std::vector<uint8_t> msg, const char* what) {
    if (stopped_ || fusedev_ == nullptr) return false;
    const int fd = fusedev_->DupFd();
    if (fd < 0) return false;
    fusedev::SendNotifyDetached(fd, std::move(msg), what);
    return true;
  }

  // mount({ mountpoint, fsname, subtype, allowOther, defaultPermissions, threads,
  //         allowFusermount, forceFusermount }) -> { viaFusermount, threads }
  Napi::Value Mount(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireNoTransport(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "mount options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    fusedev::MountOptions mo;
    mo.mountpoint = OptString(o, "mountpoint", "");
    mo.fsname = OptString(o, "fsname", "nydus");
    mo.subtype = OptString(o, "subtype", "nydus");
    mo.allow_other = OptBool(o, "allowOther", false);
    mo.default_permissions = OptBool(o, "defaultPermissions", true);
    mo.read_only = OptBool(o, "readOnly", true);
    mo.allow_fusermount = OptBool(o, "allowFusermount", true);
    mo.force_fusermount = OptBool(o, "forceFusermount", false);
    fusedev::FuseDevOptions fo;
    Napi::Value threads = o.Get("threads");
    if (threads.IsNumber()) fo.threads = threads.As<Napi::Number>().Uint32Value();
    if (fo.threads == 0 || fo.threads > abi::kMaxFuseThreads) {
      throw Napi::RangeError::New(env,
                                  "threads must be 1.." + std::to_string(abi::kMaxFuseThreads));
    }
    mo.max_read = fuse::kMaxReplyPayload;
    fusedev::MountResult mr;
    std::string err;
    int rc = fusedev::Mount(mo, &mr, &err);
    if (rc != 0) throw MakeError(env, "ERR_FUSE_MOUNT", err, rc);
    session_->set_transport_kind(transport::TransportKind::kFuseDev);
    fusedev_ = std::make_unique<fusedev::FuseDevTransport>(session_.get(), fo);
    std::weak_ptr<fuse::FuseSession> weak = session_;
    fusedev_->set_on_closed([weak](int e) {
      if (auto s = weak.lock()) s->NotifyClosed(e);
    });
    mountpoint_ = mo.mountpoint;
    via_fusermount_ = mr.via_fusermount;
    transport_attached_ = true;
    rc = fusedev_->Start(mr.fd, &err);
    if (rc != 0) {
      StopAll();
      throw MakeError(env, "ERR_FUSE_MOUNT", "starting /dev/fuse workers: " + err, rc);
    }
    Napi::Object res = Napi::Object::New(env);
    res.Set("viaFusermount", mr.via_fusermount);
    res.Set("threads", static_cast<double>(fusedev_->GetStats().threads));
    return res;
  }

  // attachVirtio({ socketPath?, listenFd?, numRequestQueues, maxQueueSize }) -> { socketPath }
  Napi::Value AttachVirtio(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireNoTransport(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "virtio options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    vhost::BackendOptions bo;
    bo.socket_path = OptString(o, "socketPath", "");
    Napi::Value fd = o.Get("listenFd");
    if (fd.IsNumber()) bo.listen_fd = fd.As<Napi::Number>().Int32Value();
    Napi::Value q = o.Get("numRequestQueues");
    if (q.IsNumber()) bo.num_request_queues = q.As<Napi::Number>().Uint32Value();
    Napi::Value qs = o.Get("maxQueueSize");
    if (qs.IsNumber()) bo.max_queue_size = qs.As<Napi::Number>().Uint32Value();
    session_->set_transport_kind(transport::TransportKind::kVirtio);
    vhost_ = std::make_unique<vhost::VhostUserFsBackend>(bo, session_.get());
    std::string err;
    int rc = vhost_->Start(&err);
    if (rc != 0) {
      vhost_.reset();
      throw MakeError(env, "ERR_VIRTIO", "starting the vhost-user backend: " + err, rc);
    }
    transport_attached_ = true;
    Napi::Object res = Napi::Object::New(env);
    res.Set("socketPath", vhost_->socket_path());
    return res;
  }

  // attachLoopback(): requests come from inject() only.
  void AttachLoopback(const Napi::CallbackInfo& info) {
    RequireNoTransport(info.Env());
    session_->set_transport_kind(transport::TransportKind::kVirtio);
    transport_attached_ = true;
    loopback_ = true;
  }

  // inject(id, request: Uint8Array, outCapacity): the reply comes back through the dispatcher.
  void Inject(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    if (!loopback_) throw MakeError(env, "ERR_FUSE_TRANSPORT", "inject() needs attachLoopback()");
    uint32_t id = ArgU32(info, 0, "id");
    if (!info[1].IsTypedArray()) throw Napi::TypeError::New(env, "request must be a Uint8Array");
    auto a = info[1].As<Napi::Uint8Array>();
    uint32_t cap = ArgU32(info, 2, "outCapacity");
    if (cap > abi::kMaxInjectReply) {
      throw Napi::RangeError::New(
          env, "outCapacity must be at most " + std::to_string(abi::kMaxInjectReply) + " bytes");
    }
    session_->OnRequest(new LoopbackRequest(bridge_, id, a.Data(), a.ByteLength(), cap));
  }

  // setFopSlots(shift, rootSlot): node id -> counter slot (fuse/fop_counters.h).
  void SetFopSlots(const Napi::CallbackInfo& info) {
    const uint32_t shift = ArgU32(info, 0, "shift");
    const uint32_t root = ArgU32(info, 1, "rootSlot");
    if (shift >= 64 || root >= abi::kMaxFopSlots) {
      throw Napi::RangeError::New(
          info.Env(), "shift must be < 64 and rootSlot < " + std::to_string(abi::kMaxFopSlots));
    }
    session_->fops().SetSlotShift(shift);
    session_->fops().SetRootSlot(root);
  }
  // fopStats(slot) -> the NYDUS_ABI_FOP_* statistics of that slot (abi/js_abi.h)
  Napi::Value FopStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint32_t slot = ArgU32(info, 0, "slot");
    if (slot >= abi::kMaxFopSlots) {
      throw Napi::RangeError::New(env, "slot must be < " + std::to_string(abi::kMaxFopSlots));
    }
    fuse::FopSnapshot snap;
    session_->fops().Snapshot(slot, &snap);
    Napi::Object o = Napi::Object::New(env);
    SetFopStats(o, snap);
    return o;
  }

  // attachPassthrough(source, lo, hi, countSlot, wholeConnection): serves the host directory
  // `source` natively as node ids [lo, hi) (root lo) with upstream's fixed passthrough_fs
  // options; its requests are counted in operation-counter slot countSlot. Throws
  // ERR_PASSTHROUGH (with errno) when the directory cannot be served or the range is taken.
  void AttachPassthrough(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "source must be a string");
    const std::string source = info[0].As<Napi::String>().Utf8Value();
    const uint64_t lo = ArgU64(info, 1, "lo");
    const uint64_t hi = ArgU64(info, 2, "hi");
    const uint32_t count_slot = ArgU32(info, 3, "countSlot");
    if (lo == 0 || hi <= lo || count_slot >= abi::kMaxFopSlots) {
      throw Napi::RangeError::New(
          env, "need 0 < lo < hi and countSlot < " + std::to_string(abi::kMaxFopSlots));
    }
    passthrough::PassthroughOptions po = passthrough::KataSharedDirOptions();
    po.node_base = lo;
    po.node_span = hi - lo;
    int err = 0;
    auto fs = passthrough::PassthroughFs::Open(source, po, &err);
    if (fs == nullptr) {
      throw MakeError(env, "ERR_PASSTHROUGH", "cannot serve " + source + ": " + std::strerror(-err),
                      err);
    }
    fuse::NativeMounts::Mount m;
    m.lo = lo;
    m.hi = hi;
    m.fs = passthrough::AsNativeFs(std::move(fs));
    m.count_node = (static_cast<uint64_t>(count_slot) << session_->fops().slot_shift()) + 2;
    m.whole_connection = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
    if (!session_->AttachNative(std::move(m))) {
      throw MakeError(env, "ERR_PASSTHROUGH", "node range already served natively", EEXIST);
    }
  }
  // detachPassthrough(lo) -> whether one was attached there. Requests already inside finish;
  // the last of them frees it.
  Napi::Value DetachPassthrough(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), session_->DetachNative(ArgU64(info, 0, "lo")) != nullptr);
  }
  // passthroughRoot(lo) -> the root's attributes ({ino, mode, ..., attrTimeout}); throws with
  // the errno when the root cannot be stat'ed, ERR_PASSTHROUGH ENOENT when nothing is at lo.
  Napi::Value PassthroughRoot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto fs = session_->NativeAt(ArgU64(info, 0, "lo"));
    if (fs == nullptr) throw MakeError(env, "ERR_PASSTHROUGH", "no passthrough there", ENOENT);
    fuse_entry_out e{};
    const int rc = fs->RootEntry(&e);
    if (rc != 0) throw MakeError(env, "ERR_PASSTHROUGH", "root of the passthrough", rc);
    Napi::Object o = Napi::Object::New(env);
    const fuse_attr& a = e.attr;
    o.Set("ino", static_cast<double>(a.ino));
    o.Set("mode", a.mode);
    o.Set("nlink", a.nlink);
    o.Set("uid", a.uid);
    o.Set("gid", a.gid);
    o.Set("size", static_cast<double>(a.size));
    o.Set("blocks", static_cast<double>(a.blocks));
    o.Set("blksize", a.blksize);
    o.Set("rdev", a.rdev);
    o.Set("atime", static_cast<double>(a.atime));
    o.Set("atimeNsec", a.atimensec);
    o.Set("mtime", static_cast<double>(a.mtime));
    o.Set("mtimeNsec", a.mtimensec);
    o.Set("ctime", static_cast<double>(a.ctime));
    o.Set("ctimeNsec", a.ctimensec);
    o.Set("attrTimeout", static_cast<double>(e.attr_valid) + e.attr_valid_nsec / 1e9);
    return o;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const fuse::SessionStats s = session_->Stats();
    SetSessionStats(o, s);
    Napi::Object ops = Napi::Object::New(env);
    for (uint32_t op = 0; op < fuse::kOpcodeTableSize; ++op) {
      if (s.ops[op] != 0) ops.Set(fuse::OpName(op), static_cast<double>(s.ops[op]));
    }
    o.Set("ops", ops);
    if (fusedev_ != nullptr) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("kind", "fusedev");
      SetFuseDevStats(t, fusedev_->GetStats());
      o.Set("transport", t);
    }
    if (vhost_ != nullptr) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("kind", "virtio");
      t.Set("connected", vhost_->connected());
      SetVirtioStats(t, vhost_->GetStats());
      o.Set("transport", t);
    }
    return o;
  }

  void Stop(const Napi::CallbackInfo&) { StopAll(); }

  FuseBridge* bridge_ = nullptr;  // owned by its loop wake (fuse_bridge.h)
  std::shared_ptr<fuse::FuseSession> session_;
  std::unique_ptr<BlobWakers> wakers_;  // after session_: detached before it goes
  std::unique_ptr<fusedev::FuseDevTransport> fusedev_;
  std::unique_ptr<vhost::VhostUserFsBackend> vhost_;
  std::string mountpoint_;
  bool via_fusermount_ = false;
  bool transport_attached_ = false;
  bool loopback_ = false;
  bool stopped_ = false;
  bool hooked_ = false;
  Napi::Reference<Napi::Float64Array> nums_ref_;
  Napi::Reference<Napi::Uint8Array> rbytes_ref_;
  double* nums_ = nullptr;
  size_t nums_len_ = 0;
  uint8_t* rbytes_ = nullptr;
  size_t rbytes_len_ = 0;
};

}  // namespace

void RegisterFuseSession(Napi::Env env, Napi::Object exports) {
  exports.Set("FuseSession", FuseSessionWrap::Define(env));
}

}  // namespace nydus::binding
